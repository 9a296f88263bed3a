"""The prediction log: one JSON line per answered /predict request, for joining late labels later.

Each record: ``{"ts", "event": "prediction", "predictions", "model_version", "request_id"}``, plus the
class scores and classes when the answer had them, and ``inputs`` only when ``serving.log_inputs`` is on.
``mlship monitor accuracy --log FILE --labels LABELS.csv`` reads it.

Where it goes is chosen at start by ``MLSHIP_PREDICTION_LOG``: ``stdout`` (the default; the service's other
log lines are on stderr), ``off``, or a file path: JSON lines appended by every worker, rotated to ``FILE.1``
… ``FILE.<MLSHIP_PREDICTION_LOG_BACKUPS>`` (default 5) before a write would take it past
``MLSHIP_PREDICTION_LOG_MAX_MB`` (default 100), so no file is larger than that unless one write alone is.
Records are buffered and written together at most ``FLUSH_S`` later: a request pays for one bytes
concatenation (its record is its answer's body) and a list append.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ENV = "MLSHIP_PREDICTION_LOG"
ENV_MAX_MB = "MLSHIP_PREDICTION_LOG_MAX_MB"
ENV_BACKUPS = "MLSHIP_PREDICTION_LOG_BACKUPS"
FLUSH_S = 0.2
FLUSH_BYTES = 1 << 20
OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE


class PredictionLog:
    """Buffers prediction records and writes them to stdout or a rotating file (or nowhere)."""

    def __init__(self, destination: str = "stdout", max_bytes: int = 100 << 20, backups: int = 5) -> None:
        self.destination = destination
        self.enabled = destination != "off"
        self.path = None if destination in ("stdout", "off") else Path(destination)
        self.max_bytes = max_bytes
        self.backups = backups
        self._buffer: list[bytes] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._fd: int | None = None

    @classmethod
    def from_environment(cls) -> PredictionLog:
        destination = os.environ.get(ENV, "stdout").strip() or "stdout"
        try:
            max_bytes = int(float(os.environ.get(ENV_MAX_MB, "100")) * (1 << 20))
            backups = int(os.environ.get(ENV_BACKUPS, "5"))
        except ValueError:
            max_bytes, backups = 100 << 20, 5
        return cls(destination, max(max_bytes, 1), max(backups, 1))

    def record(self, answer: bytes, inputs: Any = None) -> None:
        """Queue one answered request's record, built around its answer's JSON body (no second encoding).

        ``answer`` is the body sent to the client: ``{"predictions": …, ["probabilities"/scores, "classes"],
        "model_version": …, "request_id": …}``.
        """
        if not self.enabled:
            return
        line = b'{"ts":%.6f,"event":"prediction",%s' % (time.time(), answer[1:])
        if inputs is not None:
            with contextlib.suppress(TypeError):
                line = line[:-1] + b',"inputs":' + orjson.dumps(inputs, option=OPTIONS)[:-1] + b"}"
        self._buffer.append(line + b"\n")
        self._size += len(line) + 1
        if self._size >= FLUSH_BYTES:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(FLUSH_S, self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        """Write every queued record."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buffer:
            return
        data = b"".join(self._buffer)
        self._buffer, self._size = [], 0
        with contextlib.suppress(OSError, ValueError):  # a full disk or closed stdout never fails a request
            if self.path is None:
                sys.stdout.write(data.decode())
                sys.stdout.flush()
            else:
                self._write_file(data)

    def _write_file(self, data: bytes) -> None:
        assert self.path is not None
        if self._fd is not None and _stat(self.path, "st_ino") != os.fstat(self._fd).st_ino:
            os.close(self._fd)  # another worker rotated the file: follow it
            self._fd = None
        fd = self._fd if self._fd is not None else self._open()
        if _overflows(os.fstat(fd).st_size, len(data), self.max_bytes):
            self._rotate(len(data))
            fd = self._open()
        os.write(fd, data)

    def _open(self) -> int:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self._fd

    def _rotate(self, incoming: int) -> None:
        """Move the file to ``FILE.1`` (older ones up) before ``incoming`` more bytes would overflow it."""
        assert self.path is not None
        with open(f"{self.path}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            size = _stat(self.path, "st_size")
            if size is not None and _overflows(size, incoming, self.max_bytes):  # not rotated meanwhile
                for index in range(self.backups - 1, 0, -1):
                    older = Path(f"{self.path}.{index}")
                    if older.exists():
                        older.replace(f"{self.path}.{index + 1}")
                self.path.replace(f"{self.path}.1")
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _overflows(size: int, incoming: int, max_bytes: int) -> bool:
    """Whether appending ``incoming`` bytes would take a non-empty file past ``max_bytes``."""
    return size > 0 and size + incoming > max_bytes


def _stat(path: Path, field: str) -> int | None:
    """One integer field of ``path``'s stat (``st_ino``, ``st_size``), or None when it is not there."""
    try:
        return int(getattr(path.stat(), field))
    except OSError:
        return None
