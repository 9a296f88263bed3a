"""The ASGI app driven message by message: stalled bodies, clients that leave, and the slots they held."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROW


class Driver:
    """Runs an app's lifespan and sends it hand-made HTTP requests on the test's event loop."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lifespan: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Driver:
        started: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def receive() -> dict[str, Any]:
            return await self._lifespan.get()

        async def send(message: dict[str, Any]) -> None:
            await started.put(message)

        await self._lifespan.put({"type": "lifespan.startup"})
        self._task = asyncio.ensure_future(
            self.app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
        )
        assert (await started.get())["type"] == "lifespan.startup.complete"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._lifespan.put({"type": "lifespan.shutdown"})
        assert self._task is not None
        await self._task

    async def request(
        self,
        messages: list[dict[str, Any]],
        *,
        then: Callable[[], Any] | None = None,
        path: str = "/predict",
        method: str = "POST",
    ) -> tuple[int | None, dict[str, Any]]:
        """Feed ``messages`` to the app; after them, ``then()`` decides what receive() does next."""
        sent: list[dict[str, Any]] = []
        queue = list(messages)

        async def receive() -> dict[str, Any]:
            if queue:
                return queue.pop(0)
            if then is not None:
                return await then()
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"t"), (b"content-type", b"application/json")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 2),
        }
        await self.app(scope, receive, send)
        status = sent[0]["status"] if sent else None
        body = json.loads(b"".join(m.get("body", b"") for m in sent[1:])) if len(sent) > 1 else {}
        return status, body


def body(payload: Any, more: bool = False) -> dict[str, Any]:
    return {"type": "http.request", "body": json.dumps(payload).encode(), "more_body": more}


@pytest.fixture
def app_for(make_project: Callable[..., Path]) -> Callable[..., Any]:
    from mlship.serving import create_app

    def build(kind: str = "classifier", **serving: Any) -> Any:
        return create_app(make_project(kind, serving=serving), wait_for_model=True, log_stream=io.StringIO())

    return build


def test_a_whole_request_in_one_message(app_for: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with Driver(app_for()) as driver:
            status, answer = await driver.request([body(ROW)])
            assert status == 200 and len(answer["predictions"]) == 1

    asyncio.run(scenario())


def test_a_body_in_pieces_is_put_together(app_for: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with Driver(app_for()) as driver:
            raw = json.dumps([ROW, ROW]).encode()
            pieces = [
                {"type": "http.request", "body": raw[i : i + 7], "more_body": i + 7 < len(raw)}
                for i in range(0, len(raw), 7)
            ]
            status, answer = await driver.request(pieces)
            assert status == 200 and len(answer["predictions"]) == 2

    asyncio.run(scenario())


def test_a_stalled_body_is_408_and_frees_its_slot(
    app_for: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlship.serving.predict as app_module

    monkeypatch.setattr(app_module, "BODY_TIMEOUT_S", 0.3)

    async def scenario() -> None:
        app = app_for(max_concurrency=1, timeout_s=0.1)
        async with Driver(app) as driver:
            status, answer = await driver.request([{"type": "http.request", "body": b"[", "more_body": True}])
            assert status == 408 and "0.3 s" in answer["error"]
            assert app.state.service.in_flight == 0
            assert (await driver.request([body(ROW)]))[0] == 200

    asyncio.run(scenario())


def test_a_client_leaving_while_queued_frees_its_slot_and_skips_the_model(
    app_for: Callable[..., Any],
) -> None:
    async def scenario() -> None:
        app = app_for("slow", max_concurrency=2, timeout_s=10)
        async with Driver(app) as driver:
            service = app.state.service
            model = type(service.model.model)
            model.batches.clear()
            busy = asyncio.ensure_future(driver.request([body({**ROW, "delay": 0.6})]))
            await asyncio.sleep(0.15)
            left = asyncio.Event()

            async def disconnect() -> dict[str, Any]:
                await left.wait()
                return {"type": "http.disconnect"}

            leaving = asyncio.ensure_future(driver.request([body({**ROW, "delay": 0.0})], then=disconnect))
            await asyncio.sleep(0.1)
            assert service.in_flight == 2
            left.set()
            assert (await leaving)[0] is None  # nobody to answer
            assert service.in_flight == 0 + 1  # only the busy one still holds a slot
            assert (await busy)[0] == 200
            assert model.batches == [1]  # the one that left never reached the model
            assert service.in_flight == 0

    asyncio.run(scenario())
