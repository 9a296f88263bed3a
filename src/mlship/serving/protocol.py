"""The HTTP/1.1 protocol the workers run: uvicorn's httptools protocol with a bounded request head.

httptools buffers a request line and headers of any size, and uvicorn waits for them for ever, so one client
could fill a worker's memory with a gigabyte-long header, or hold connections open by sending a header byte
now and then (slowloris). Here a request head larger than ``MAX_HEAD_BYTES`` is answered 431, and one that
is not complete ``HEAD_TIMEOUT_S`` after its first byte (or after the connection opened) is answered 408;
both close the connection. Without httptools, uvicorn's h11 protocol is used, which bounds the head itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_S = 10.0


def http_protocol() -> Any:
    """The ``http`` argument for ``uvicorn.Config``: the bounded httptools protocol, or ``"h11"``."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is not installed
        return "h11"

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """httptools, with the request head bounded in size and in time (see the module docstring)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_head = True
            self._head_bytes = 0
            self._head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            was_in_head = self._in_head
            super().data_received(data)
            if not self._in_head or self.transport.is_closing():
                return
            # Still reading a head: count this chunk (all of it when a new request began inside it, which
            # over-counts by at most the previous request's tail).
            self._head_bytes = self._head_bytes + len(data) if was_in_head else len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(431, f"the request head is larger than {MAX_HEAD_BYTES // 1024} KiB")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True
            self._head_bytes = 0
            if self._head_timer is None:
                self._arm()

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._disarm()
            super().on_headers_complete()

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if not self._in_head or self.transport.is_closing():
                return
            if self._head_bytes:
                self._refuse(408, f"the request head did not arrive within {HEAD_TIMEOUT_S:g} s")
            else:  # a connection that never said anything
                self.transport.close()

        def _refuse(self, status: int, message: str) -> None:
            self._in_head = False
            self._disarm()
            self.logger.warning("Refused a request head: %s.", message)
            body = message.encode("ascii")
            head = [f"HTTP/1.1 {status} {_PHRASES[status]}\r\n".encode("ascii")]
            head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
            head.append(
                b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
                % len(body)
            )
            self.transport.write(b"".join(head) + body)
            self.transport.close()

    return BoundedHttpToolsProtocol


_PHRASES = {408: "Request Timeout", 431: "Request Header Fields Too Large"}
