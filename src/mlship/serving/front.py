"""In front of every route: request ids, the version header, metrics and one log line per request."""

from __future__ import annotations

import itertools
import os
import re
import time
import traceback
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .asgi import HEADERS, INPUTS, JSON, REQUEST_ID, ROUTES, ROWS, STATUS, error_body, header
from .predict import PredictEndpoint
from .service import Service

_REQUEST_ID_OK = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")


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
        given = header(scope, b"x-request-id")
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
                body = error_body("internal error", request_id, self.service.info.version)
                await send_with_headers(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", JSON), (b"content-length", str(len(body)).encode())],
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
