"""The ASGI application: /predict, health, metrics, OpenAPI and Swagger UI — and no other route."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import threading
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .batching import Job, ModelRunner, Outcome
from .contract import InputContract, InvalidRequest, SchemaError, TooManyRows
from .docs import CONTENT_TYPES, assets, docs_page
from .loading import LoadedModel, StartupError, load_model
from .logs import JsonLog
from .metrics import Metrics
from .openapi import as_openapi_30, build_openapi
from .settings import ServiceInfo, ServiceSettings, SettingsError

ROUTES = (
    "/predict",
    "/health/live",
    "/health/ready",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/static/{asset}",
)
REQUEST_ID = "mlship.request_id"
ROWS = "mlship.rows"
INPUTS = "mlship.inputs"
STATUS = "mlship.status"
HEADERS = "mlship.headers"
WATCH_AFTER_S = 0.02
BODY_TIMEOUT_S = 30.0  # at least; serving.timeout_s when longer
_REQUEST_ID_OK = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
_JSON = b"application/json"
_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY

FatalHandler = Callable[[str], None]


class _ClientGone(Exception):
    """The client disconnected; nobody is left to answer."""


class _Refused(Exception):
    def __init__(self, status: int, message: str, retry_after: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def _error_body(message: str, request_id: str, version: str, **extra: Any) -> bytes:
    return orjson.dumps({"error": message, "request_id": request_id, "model_version": version, **extra})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def _is_json(content_type: bytes | None) -> bool:
    return content_type is not None and content_type.split(b";", 1)[0].strip().lower() == _JSON


def _safe_header_value(value: str) -> bytes:
    return re.sub(r"[^\x20-\x7e]", "?", value).encode("latin-1")


class Service:
    """Everything the routes share: contract, model, runner, metrics, log and readiness."""

    def __init__(
        self,
        project_dir: Path,
        info: ServiceInfo,
        *,
        log_stream: TextIO | None = None,
        on_fatal: FatalHandler | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.project_dir = Path(project_dir)
        self.info = info
        self.settings = info.serving
        self.log = JsonLog(log_stream, model_version=info.version)
        self.contract = _load_contract(self.project_dir / info.schema, info.schema)
        target = self.contract.schema.get("target")
        target = target if isinstance(target, dict) else {}
        self.example = self.contract.example_row(info.example)
        document = build_openapi(self.contract, info, self.example)
        self.openapi = {"3.1": orjson.dumps(document), "3.0": orjson.dumps(as_openapi_30(document))}
        task = self.contract.schema.get("task")
        quantiles = (
            (target.get("observed") or {}).get("quantiles")
            if isinstance(target.get("observed"), dict)
            else None
        )
        edges = [float(v) for v in quantiles.values()] if isinstance(quantiles, dict) else None
        self.metrics = Metrics(info.name, info.version, task if isinstance(task, str) else None, edges)
        self.classes = target.get("classes") if isinstance(target.get("classes"), list) else None
        self.version_header = _safe_header_value(info.version)
        self.model: LoadedModel | None = None
        self.runner: ModelRunner | None = None
        self.failure: str | None = None
        self.preloaded: LoadedModel | None = None  # loaded before the server started (extra workers)
        self.in_flight = 0
        self._on_fatal = on_fatal
        self._on_ready = on_ready

    # --- start-up -------------------------------------------------------------------------------------------

    def load(self) -> LoadedModel:
        """Load the model and run the self-test on the example row; raise StartupError (blocking)."""
        model = load_model(self.project_dir, self.info, self.classes)
        try:
            rows = self.contract.validate(self.example, max_rows=1)
        except (InvalidRequest, TooManyRows) as error:
            raise StartupError(
                f"the example row does not satisfy {self.info.schema}: {error}; fix the example "
                "in service.json or schema.json"
            ) from error
        try:
            predictions, probabilities = model.predict(self.contract.frame(rows))
            orjson.dumps({"p": predictions, "q": probabilities}, option=_DUMPS_OPTIONS)
        except Exception as error:
            first = str(error).strip().splitlines()
            raise StartupError(
                f"self-test prediction on the example row failed: {type(error).__name__}"
                f"{': ' + first[0] if first else ''}"
            ) from error
        return model

    def start(self, model: LoadedModel, loop: asyncio.AbstractEventLoop) -> None:
        """On the event loop: start the model thread and declare the service ready."""
        batching = self.settings.batching
        self.model = model
        self.runner = ModelRunner(
            self.contract,
            model,
            loop,
            max_rows=batching.max_size,
            max_wait_s=batching.max_wait_ms / 1000,
            on_batch=self.metrics.observe_batch,
        )
        self.log.info("ready", name=self.info.name, classes=model.classes, probabilities=model.has_proba)
        if self._on_ready is not None:
            self._on_ready()

    def fail(self, message: str) -> None:
        """Record a start-up failure: one log line, readiness stays 503, the runner is told to exit."""
        self.failure = message
        self.log.error("startup_failed", message=message)
        if self._on_fatal is not None:
            self._on_fatal(message)

    def load_in_background(self, loop: asyncio.AbstractEventLoop) -> None:
        """Thread target: load, then hand over to the loop (or fail)."""
        try:
            model = self.load()
        except StartupError as error:
            self.fail(str(error))
            return
        except BaseException as error:  # noqa: BLE001 - an unexpected failure must still be one clear line
            self.fail(f"loading the model failed: {type(error).__name__}: {error}")
            return
        loop.call_soon_threadsafe(self.start, model, loop)

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()


def _load_contract(path: Path, name: str) -> InputContract:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StartupError(f"{name}: not found in {path.parent}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StartupError(f"{name}: cannot be read as JSON: {error}") from None
    try:
        return InputContract.from_schema(schema)
    except SchemaError as error:
        raise StartupError(str(error).replace("schema.json", name, 1)) from None


class PredictEndpoint:
    """POST /predict as a plain ASGI callable: every step is on the hot path, so nothing is done twice."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.limit = service.settings.max_body_bytes
        self.max_rows = service.settings.max_batch_rows
        self.timeout = service.settings.timeout_s
        self.body_timeout = max(BODY_TIMEOUT_S, service.settings.timeout_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = self.service
        request_id: str = scope.get(REQUEST_ID) or uuid.uuid4().hex
        try:
            content_type = _header(scope, b"content-type")
            if not _is_json(content_type):
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
            body = await self._read_body(scope, receive)
            rows, data = service.contract.parse(body, self.max_rows)
            scope[ROWS] = len(rows)
            if service.settings.log_inputs:
                scope[INPUTS] = data
            runner.arriving -= 1
            arriving = False
            job = runner.submit(rows)
            outcome = await self._wait(runner, job, receive)
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
        declared = _header(scope, b"content-length")
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

    async def _wait(self, runner: ModelRunner, job: Job, receive: Receive) -> Outcome:
        """The job's outcome, TimeoutError after ``timeout_s``, or _ClientGone when the client leaves.

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

        deadline = loop.call_later(self.timeout, give_up, TimeoutError())
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
        payload: dict[str, Any] = {"predictions": outcome.predictions}
        if outcome.probabilities is not None:
            payload["probabilities"] = outcome.probabilities
            payload["classes"] = service.model.classes if service.model is not None else None
        payload["model_version"] = service.info.version
        payload["request_id"] = request_id
        body = orjson.dumps(payload, option=_DUMPS_OPTIONS)
        scope[STATUS] = 200
        headers = [
            (b"content-type", _JSON),
            (b"content-length", str(len(body)).encode()),
            *scope.get(HEADERS, ()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

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
        body = _error_body(message, request_id, self.service.info.version, **(extra or {}))
        headers = [
            (b"content-type", _JSON),
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


class ServiceFront:
    """In front of every route: request id, ``X-Request-ID``/``X-Model-Version``, metrics, one log line.

    POST /predict goes straight to its endpoint; everything else through Starlette's router.
    """

    def __init__(self, app: ASGIApp, service: Service, predict: PredictEndpoint) -> None:
        self.app = app
        self.service = service
        self.predict = predict
        self._routes = {route: route for route in ROUTES if "{" not in route}
        self._prefix = os.urandom(8).hex()
        self._count = itertools.count()

    def _request_id(self, scope: Scope) -> str:
        given = _header(scope, b"x-request-id")
        if given:
            text = given.decode("latin-1")
            if _REQUEST_ID_OK.fullmatch(text):
                return text
        return f"{self._prefix}{next(self._count):016x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = self._request_id(scope)
        scope[REQUEST_ID] = request_id
        extra_headers = [
            (b"x-request-id", request_id.encode("latin-1")),
            (b"x-model-version", self.service.version_header),
        ]
        scope[HEADERS] = extra_headers
        path = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                scope[STATUS] = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), *extra_headers]}
            await send(message)

        try:
            if path == "/predict" and scope["method"] == "POST":
                await self.predict(scope, receive, send)
            else:
                await self.app(scope, receive, send_with_headers)
        except Exception as error:
            self.service.log.error(
                "unhandled_error",
                request_id=request_id,
                error=type(error).__name__,
                traceback="".join(traceback.format_exception(error)),
            )
            if STATUS not in scope:
                body = _error_body("internal error", request_id, self.service.info.version)
                await send_with_headers(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", _JSON), (b"content-length", str(len(body)).encode())],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        finally:
            status = scope.get(STATUS, 500)
            route = self._routes.get(path) or (
                "/docs/static/{asset}" if path.startswith("/docs/static/") else "other"
            )
            elapsed = time.perf_counter() - started
            self.service.metrics.observe_request(route, status, elapsed)
            fields: dict[str, Any] = {
                "request_id": request_id,
                "method": scope["method"],
                "route": route,
                "status": status,
                "latency_ms": round(elapsed * 1000, 3),
            }
            if ROWS in scope:
                fields["rows"] = scope[ROWS]
            if INPUTS in scope:
                fields["inputs"] = scope[INPUTS]
            self.service.log.info("request", **fields)


class ServiceApp(Starlette):
    """Starlette behind the service front: ``app.routes`` lists the routes, ``app.state.service`` the rest."""

    front: ServiceFront

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.front(scope, receive, send)

    async def route(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Starlette's own handling (router, exception handlers)."""
        await super().__call__(scope, receive, send)


def _routes(service: Service, predict: PredictEndpoint) -> list[Route]:
    version = service.info.version
    files = assets()
    page, policy = docs_page(f"{service.info.name} {version} — API")

    async def live(request: Request) -> Response:
        return Response(
            orjson.dumps({"status": "live", "model_version": version}), media_type="application/json"
        )

    async def ready(request: Request) -> Response:
        if service.runner is not None:
            return Response(
                orjson.dumps({"status": "ready", "model_version": version}), media_type="application/json"
            )
        status = {"status": "failed", "detail": service.failure} if service.failure else {"status": "loading"}
        return Response(
            orjson.dumps({**status, "model_version": version}),
            status_code=503,
            media_type="application/json",
            headers={"Retry-After": "1"},
        )

    async def metrics(request: Request) -> Response:
        body, content_type = service.metrics.render()
        return Response(body, media_type=content_type)

    async def openapi(request: Request) -> Response:
        wanted = request.query_params.get("openapi", "3.1")
        document = service.openapi.get(wanted)
        if document is None:
            return Response(
                _error_body(
                    f"openapi={wanted!r} is not supported; use 3.1 or 3.0",
                    request.scope.get(REQUEST_ID, ""),
                    version,
                ),
                status_code=422,
                media_type="application/json",
            )
        return Response(document, media_type="application/json")

    async def docs(request: Request) -> Response:
        return Response(
            page,
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff"},
        )

    async def asset(request: Request) -> Response:
        name = request.path_params["asset"]
        path = files.get(name)
        if path is None:
            raise HTTPException(404)
        return FileResponse(
            path,
            media_type=CONTENT_TYPES[path.suffix],
            headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
        )

    return [
        Route("/predict", predict, methods=["POST"], name="predict"),
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/docs/static/{asset}", asset, methods=["GET"]),
    ]


async def _http_error(request: Request, error: Exception) -> Response:
    status = getattr(error, "status_code", 500)
    headers = getattr(error, "headers", None) or {}
    messages = {404: "no such route; see /openapi.json", 405: "method not allowed on this route"}
    body = _error_body(
        messages.get(status, "error"),
        request.scope.get(REQUEST_ID, ""),
        request.app.state.service.info.version,
    )
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def create_app(
    project_dir: Path | str,
    settings: ServiceSettings | None = None,
    *,
    info: ServiceInfo | None = None,
    wait_for_model: bool = False,
    on_ready: Callable[[], None] | None = None,
    on_fatal: FatalHandler | None = None,
    log_stream: TextIO | None = None,
) -> Starlette:
    """The service for the project in ``project_dir`` (solution.py, artifacts, schema.json, service.json).

    ``settings`` overrides service.json's ``serving`` section. The model loads when the app starts (its
    lifespan): in a background thread, with /health/ready answering 503 until the model is loaded and its
    self-test passed — or, with ``wait_for_model``, before the app accepts any request. A failed load logs one
    line and calls ``on_fatal(message)``. Raises StartupError when schema.json or service.json is unusable.
    """
    project_dir = Path(project_dir)
    try:
        info = info or ServiceInfo.for_project(project_dir)
    except SettingsError as error:
        raise StartupError(str(error)) from None
    if settings is not None:
        info = ServiceInfo(**{**info.__dict__, "serving": settings})
    service = Service(project_dir, info, log_stream=log_stream, on_fatal=on_fatal, on_ready=on_ready)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        if service.preloaded is not None:
            service.start(service.preloaded, loop)
        elif wait_for_model:
            try:
                model = await loop.run_in_executor(None, service.load)
            except StartupError as error:
                service.fail(str(error))
                raise
            service.start(model, loop)
        else:
            threading.Thread(
                target=service.load_in_background, args=(loop,), name="mlship-load", daemon=True
            ).start()
        try:
            yield
        finally:
            service.close()

    predict = PredictEndpoint(service)
    app = ServiceApp(
        routes=_routes(service, predict),
        lifespan=lifespan,
        exception_handlers={404: _http_error, 405: _http_error},
    )
    app.router.redirect_slashes = False
    app.front = ServiceFront(app.route, service, predict)
    app.state.service = service
    return app
