"""JSON log lines on stderr: one per request, plus start-up, readiness and error events.

Input values never appear in a line unless ``serving.log_inputs`` is true; model exception messages (which
may quote an input) are left out on the same terms.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Any, TextIO

import orjson


class JsonLog:
    """Writes one JSON object per line; ``stream`` defaults to the current ``sys.stderr``."""

    def __init__(self, stream: TextIO | None = None, **context: Any) -> None:
        self._stream = stream
        self._context = context

    def write(self, level: str, event: str, **fields: Any) -> None:
        """Write one line: time, level, event, the fixed context, then ``fields``."""
        line = {"ts": round(time.time(), 6), "level": level, "event": event, **self._context, **fields}
        stream = self._stream if self._stream is not None else sys.stderr
        with contextlib.suppress(OSError, ValueError):  # a closed stderr must never fail a request
            stream.write(orjson.dumps(line, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")

    def info(self, event: str, **fields: Any) -> None:
        self.write("info", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.write("error", event, **fields)


class JsonFormatter(logging.Formatter):
    """Formats uvicorn's own log records as the same JSON lines."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "event": "server",
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def uvicorn_log_config(level: str = "warning") -> dict[str, Any]:
    """A logging config for uvicorn: its messages as JSON lines on stderr, its access log off."""
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "json"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
