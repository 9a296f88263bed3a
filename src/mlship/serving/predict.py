"""POST /predict: content type, concurrency slot, body, validation, the model thread, the answer."""

from __future__ import annotations

import asyncio
import atexit
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import orjson
from starlette.types import Message, Receive, Scope, Send

from .asgi import (
    DUMPS_OPTIONS,
    HEADERS,
    INPUTS,
    JSON,
    REQUEST_ID,
    ROWS,
    STATUS,
    error_body,
    header,
    is_json,
    predictions_only,
)
from .batching import Job, ModelRunner, Outcome
from .columns import Problem
from .contract import InvalidRequest, TooManyRows
from .drift import DriftCounter
from .fallback import ANSWERED_BY
from .predlog import PredictionLog
from .service import Service

WATCH_AFTER_S = 0.02
BODY_TIMEOUT_S = 30.0  # at least; serving.timeout_s when longer


class _ClientGone(Exception):
    """The client disconnected; nobody is left to answer."""


class _Refused(Exception):
    def __init__(self, status: int, message: str, retry_after: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class PredictEndpoint:
    """POST /predict as a plain ASGI callable: every step is on the hot path, so nothing is done twice."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.limit = service.settings.max_body_bytes
        self.max_rows = service.settings.max_batch_rows
        self.timeout = service.settings.timeout_s
        self.body_timeout = max(BODY_TIMEOUT_S, service.settings.timeout_s)
        self.drift = DriftCounter(service.contract.schema, service.metrics.registry)
        service.metrics.on_render.append(self.drift.flush)
        self.prediction_log = PredictionLog.from_environment()
        atexit.register(self.prediction_log.close)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = self.service
        request_id: str = scope.get(REQUEST_ID) or uuid.uuid4().hex
        try:
            content_type = header(scope, b"content-type")
            if not is_json(content_type):
                service.metrics.rejected.labels("media_type").inc()
                shown = content_type.decode("latin-1")[:80] if content_type else "none"
                raise _Refused(
                    415, f"Content-Type must be application/json, got {shown}; the body was not read"
                )
            runner = service.runner
            if runner is None:
                state = "failed to start" if service.failure else "still loading"
                raise _Refused(503, f"the model is {state}; see /health/ready", retry_after=True)
            if service.in_flight >= service.settings.max_concurrency:
                service.metrics.rejected.labels("busy").inc()
                raise _Refused(
                    503,
                    f"all {service.settings.max_concurrency} concurrency slots are busy "
                    "(serving.max_concurrency); retry shortly",
                    retry_after=True,
                )
        except _Refused as refused:
            await self._answer_error(
                scope, send, refused.status, str(refused), request_id, refused.retry_after
            )
            return
        service.in_flight += 1
        service.metrics.in_flight.inc()
        runner.arriving += 1
        arriving = True
        try:
            only = _predictions_only(scope)
            body = await self._read_body(scope, receive)
            log_inputs = service.settings.log_inputs
            rows, data = service.contract.parse(body, self.max_rows, keep_data=log_inputs)
            scope[ROWS] = len(rows)
            if log_inputs:
                scope[INPUTS] = data
            runner.arriving -= 1
            arriving = False
            if service.fallback is None:
                job = runner.submit(rows, scores=not only)
                # Counted for drift just after the batch is handed to the model (submit scheduled that
                # first), so the counting overlaps the model's work instead of delaying it; still before
                # the answer, which the model thread's result is queued behind.
                asyncio.get_running_loop().call_soon(self.drift.observe, rows)
                outcome = await self._wait(runner, job, receive)
            else:  # the spare answers when the main model raises, is slow or its circuit is open
                self.drift.observe(rows)
                outcome = await service.fallback.answer(
                    runner,
                    rows,
                    not only,
                    scope,
                    lambda runner, job, timeout: self._wait(runner, job, receive, timeout),
                    lambda error: self._log_model_error(error, request_id),
                )
            await self._answer(scope, send, outcome, request_id)
        except _Refused as refused:
            await self._answer_error(
                scope, send, refused.status, str(refused), request_id, refused.retry_after
            )
        except InvalidRequest as invalid:
            service.metrics.rejected.labels("invalid").inc()
            details = {"details": [p.as_dict() for p in invalid.problems], "problems": invalid.total}
            await self._answer_error(scope, send, 422, f"invalid input: {invalid}", request_id, extra=details)
        except TooManyRows as too_many:
            service.metrics.rejected.labels("too_many_rows").inc()
            await self._answer_error(scope, send, 413, str(too_many), request_id)
        except _ClientGone:
            scope[STATUS] = 499  # nginx's "client closed request": nobody is left to answer
        except TimeoutError:
            service.log.error("prediction_timeout", request_id=request_id, timeout_s=self.timeout)
            message = f"the prediction took longer than {self.timeout:g} s (serving.timeout_s)"
            await self._answer_error(scope, send, 504, message, request_id)
        except Exception as error:  # the model's own exception (or its output) fails only this request
            self._log_model_error(error, request_id)
            message = (
                f"the model failed on this input ({type(error).__name__}); "
                f"request id {request_id} is in the service log"
            )
            await self._answer_error(scope, send, 500, message, request_id)
        finally:
            if arriving:
                runner.arriving -= 1
                runner.kick()
            service.in_flight -= 1
            service.metrics.in_flight.dec()

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        declared = header(scope, b"content-length")
        too_large = f"the body is larger than {self.service.settings.max_body_mb:g} MB (serving.max_body_mb)"
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            self.service.metrics.rejected.labels("body_too_large").inc()
            raise _Refused(413, too_large)
        chunks: list[bytes] = []
        size = 0
        deadline: float | None = None
        while True:
            if deadline is None:
                message = await receive()  # the usual case: the whole body is already here
            else:
                remaining = deadline - time.monotonic()
                try:
                    message = await asyncio.wait_for(receive(), remaining if remaining > 0 else 0)
                except (TimeoutError, asyncio.TimeoutError):
                    self.service.metrics.rejected.labels("body_timeout").inc()
                    raise _Refused(408, f"the body did not arrive within {self.body_timeout:g} s") from None
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.limit:
                    self.service.metrics.rejected.labels("body_too_large").inc()
                    raise _Refused(413, too_large)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
            if deadline is None:  # a slow or stalled client must not hold its slot for ever
                deadline = time.monotonic() + self.body_timeout
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _wait(
        self, runner: ModelRunner, job: Job, receive: Receive, timeout: float | None = None
    ) -> Outcome:
        """The job's outcome, TimeoutError after ``timeout`` (default ``timeout_s``), or _ClientGone when the
        client leaves.

        A request still waiting after WATCH_AFTER_S starts listening for the client's disconnect (which
        frees its slot at once); quicker requests never pay for that listener.
        """
        loop = asyncio.get_running_loop()
        future = job.future
        watcher: asyncio.Task[Message] | None = None

        def give_up(error: BaseException) -> None:
            if not future.done():
                job.cancelled = True
                future.set_exception(error)

        def on_message(task: asyncio.Task[Message]) -> None:
            if not task.cancelled() and task.exception() is None:
                give_up(_ClientGone())

        def watch() -> None:
            nonlocal watcher
            if not future.done():
                watcher = loop.create_task(receive())  # type: ignore[arg-type]
                watcher.add_done_callback(on_message)

        deadline = loop.call_later(self.timeout if timeout is None else timeout, give_up, TimeoutError())
        probe = loop.call_later(WATCH_AFTER_S, watch)
        try:
            return await future
        finally:
            deadline.cancel()
            probe.cancel()
            if watcher is not None and not watcher.done():
                watcher.cancel()

    async def _answer(self, scope: Scope, send: Send, outcome: Outcome, request_id: str) -> None:
        service = self.service
        model, version = service.model, service.info.version
        spare = scope.get(ANSWERED_BY)
        if spare is not None:
            model, version = spare.model, spare.version
        payload: dict[str, Any] = {"predictions": outcome.predictions}
        if outcome.probabilities is not None and model is not None:
            payload[model.scores_key or "probabilities"] = outcome.probabilities
            payload["classes"] = model.classes
        payload["model_version"] = version
        payload["request_id"] = request_id
        body = orjson.dumps(payload, option=DUMPS_OPTIONS)
        scope[STATUS] = 200
        headers = [
            (b"content-type", JSON),
            (b"content-length", str(len(body)).encode()),
            *scope.get(HEADERS, ()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.prediction_log.record(body, scope.get(INPUTS))

    async def _answer_error(
        self,
        scope: Scope,
        send: Send,
        status: int,
        message: str,
        request_id: str,
        retry_after: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> None:
        body = error_body(message, request_id, self.service.info.version, **(extra or {}))
        headers = [
            (b"content-type", JSON),
            (b"content-length", str(len(body)).encode()),
            *scope.get(HEADERS, ()),
        ]
        if retry_after:
            headers.append((b"retry-after", b"1"))
        scope[STATUS] = status
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _log_model_error(self, error: Exception, request_id: str) -> None:
        frames = traceback.extract_tb(error.__traceback__)
        last = frames[-1] if frames else None
        where = f"{Path(last.filename).name}:{last.lineno} in {last.name}" if last else None
        fields: dict[str, Any] = {"request_id": request_id, "error": type(error).__name__, "where": where}
        if self.service.settings.log_inputs:
            fields["message"] = str(error)
            fields["traceback"] = "".join(traceback.format_exception(error))
        self.service.log.error("model_error", **fields)


def _predictions_only(scope: Scope) -> bool:
    try:
        return predictions_only(scope)
    except ValueError as bad:
        raise InvalidRequest([Problem(None, "query string", str(bad))]) from None
