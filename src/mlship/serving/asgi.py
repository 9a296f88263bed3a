"""What the service's ASGI pieces share: scope keys, the route list, header and JSON helpers."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.types import Scope

ROUTES = (
    "/predict",
    "/health/live",
    "/health/ready",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/static/{asset}",
)
# Per-request values the front and the endpoints pass each other in the ASGI scope.
REQUEST_ID = "mlship.request_id"
ROWS = "mlship.rows"
INPUTS = "mlship.inputs"
STATUS = "mlship.status"
HEADERS = "mlship.headers"
JSON = b"application/json"
PREDICTIONS_ONLY = "predictions_only"  # /predict's one query parameter
DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def error_body(message: str, request_id: str, version: str, **extra: Any) -> bytes:
    """The JSON body of every error answer."""
    return orjson.dumps({"error": message, "request_id": request_id, "model_version": version, **extra})


def header(scope: Scope, name: bytes) -> bytes | None:
    """A request header's value (``name`` in lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def is_json(content_type: bytes | None) -> bool:
    """``application/json``, with or without parameters such as ``charset``."""
    return content_type is not None and content_type.split(b";", 1)[0].strip().lower() == JSON


def predictions_only(scope: Scope) -> bool:
    """/predict's ``?predictions_only=true|false``; ValueError names an unknown parameter or a bad value."""
    query: bytes = scope.get("query_string", b"")
    if not query:
        return False
    wanted = False
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name != PREDICTIONS_ONLY:
            raise ValueError(f"unknown query parameter {name[:80]!r}; /predict takes only {PREDICTIONS_ONLY}")
        if value.lower() not in _BOOLEANS:
            raise ValueError(f"{PREDICTIONS_ONLY} must be true or false, got {value[:80]!r}")
        wanted = _BOOLEANS[value.lower()]
    return wanted


_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def safe_header_value(value: str) -> bytes:
    """``value`` as a header value: printable ASCII only."""
    return re.sub(r"[^\x20-\x7e]", "?", value).encode("latin-1")
