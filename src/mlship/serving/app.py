"""The ASGI application: /predict, health, metrics, OpenAPI and Swagger UI — and no other route."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TextIO

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from .asgi import REQUEST_ID, ROUTES, error_body
from .docs import CONTENT_TYPES, assets, docs_page
from .front import ServiceApp, ServiceFront
from .loading import StartupError
from .predict import PredictEndpoint
from .service import FatalHandler, Service
from .settings import ServiceInfo, ServiceSettings, SettingsError

__all__ = ["ROUTES", "create_app"]


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
                error_body(
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
    body = error_body(
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
    on_recycle: Callable[[str], None] | None = None,
) -> Starlette:
    """The service for the project in ``project_dir`` (solution.py, artifacts, schema.json, service.json).

    ``settings`` overrides service.json's ``serving`` section. The model loads when the app starts (its
    lifespan): in a background thread, with /health/ready answering 503 until the model is loaded and its
    self-test passed — or, with ``wait_for_model``, before the app accepts any request. A failed load logs one
    line and calls ``on_fatal(message)``; ``on_recycle(message)`` asks for a new worker (fallback.py).
    Raises StartupError when schema.json or service.json is unusable.
    """
    project_dir = Path(project_dir)
    try:
        info = info or ServiceInfo.for_project(project_dir)
    except SettingsError as error:
        raise StartupError(str(error)) from None
    if settings is not None:
        info = ServiceInfo(**{**info.__dict__, "serving": settings})
    service = Service(
        project_dir, info, log_stream=log_stream, on_fatal=on_fatal, on_ready=on_ready, on_recycle=on_recycle
    )

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
