"""Malformed raw HTTP over sockets against a real service process (supervisor + uvicorn worker).

Hundreds of generated requests — bad methods, bad versions, oversized and broken headers, broken chunked
bodies, bad and truncated bodies, garbage bytes, pipelined junk — while slow clients trickle request heads:
never a 5xx, the service stays live and ready, slow heads are cut off (408, silent connections closed) and
oversized ones refused (431) without being buffered.
"""

from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from mlship.serving.protocol import HEAD_TIMEOUT_S, MAX_HEAD_BYTES

from .conftest import ROW, RunningService, run_service

pytestmark = pytest.mark.slow

STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")
BODY = json.dumps(ROW).encode()
JSON_HEAD = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def exchange(port: int, raw: bytes, timeout: float = 10.0) -> bytes:
    """Send ``raw``, half-close, and read until the server closes (it may close before reading it all)."""
    reply = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered and closed before taking everything: read what it said
            pass
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass  # reset by the server: whatever it said before counts; a reset is not a 5xx
    return reply


def statuses(reply: bytes) -> list[int]:
    return [int(code) for code in STATUS.findall(reply)]


def _junk(rng: random.Random, low: int, high: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randint(low, high)))


def _flip(rng: random.Random, data: bytes) -> bytes:
    mutable = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        mutable[rng.randrange(len(mutable))] = rng.randrange(256)
    return bytes(mutable)


def malformed_requests(rng: random.Random) -> dict[str, Callable[[], bytes]]:
    """Generators of malformed requests, by category."""
    chunked = JSON_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    return {
        "bad method": lambda: (
            rng.choice([b"GETT", b"P0ST", b"\x00\x01", b"post", b"BREW", b"G\xffT", b"GET" * 200, b""])
            + b" /predict HTTP/1.1\r\nHost: x\r\n\r\n"
        ),
        "unknown method": lambda: (
            rng.choice([b"PATCH", b"PUT", b"DELETE", b"TRACE", b"PROPFIND", b"OPTIONS", b"CONNECT"])
            + rng.choice([b" /predict", b" /health/live", b" *", b" x:443"])
            + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        ),
        "bad version": lambda: (
            b"GET /health/live "
            + rng.choice([b"HTTP/9.9", b"HTTP/1", b"HTTP/x.y", b"HTTP/1.1.1", b"", b"HTTPS/1.1", b"HTTP/2.0"])
            + b"\r\nHost: x\r\n\r\n"
        ),
        "http/0.9 and 1.0": lambda: rng.choice(
            [b"GET /health/live\r\n\r\n", b"GET /health/live HTTP/1.0\r\n\r\n", b"GET /\r\n"]
        ),
        "big header": lambda: (
            b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: "
            + b"a" * rng.randint(20_000, 2 * MAX_HEAD_BYTES + 300_000)
            + b"\r\n\r\n"
        ),
        "many headers": lambda: (
            b"GET /health/live HTTP/1.1\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(rng.randint(200, 40_000)))
            + b"\r\n"
        ),
        "long url": lambda: (
            b"GET /health/live?" + b"q" * rng.randint(10_000, 400_000) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        ),
        "broken header syntax": lambda: (
            b"GET /health/live HTTP/1.1\r\n"
            + rng.choice(
                [
                    b"Host x\r\n",
                    b"Host : x\r\n",
                    b"Host: x\r\n continued\r\n",
                    b"Ho\x00st: x\r\n",
                    b"Host: x\x00y\r\n",
                    b"Host: x\n",
                    b"Host: x\rX: y\r\n",
                    b": nameless\r\n",
                    b"X-\xff\xfe: v\r\n",
                    b"Host: \xff\xfe\xfd\r\n",
                ]
            )
            + b"\r\n"
        ),
        "broken chunked body": lambda: (
            chunked
            + rng.choice(
                [
                    b"zz\r\nab\r\n0\r\n\r\n",
                    b"5\r\nab\r\n",
                    b"-1\r\n\r\n",
                    b"ffffffffffffffffff\r\nx\r\n",
                    b"3;ext=\x00\r\nabc\r\n0\r\n\r\n",
                    b"5\r\nabcdefgh\r\n0\r\n\r\n",
                    b"0\r\nBad Trailer\r\n\r\n",
                    b"%x\r\n" % len(BODY) + BODY + b"\r\n",  # never terminated
                    b"4\r\n" + BODY[:4] + b"XX",
                ]
            )
        ),
        "chunked then good": lambda: chunked + b"%x\r\n" % len(BODY) + _flip(rng, BODY) + b"\r\n0\r\n\r\n",
        "bad content-length": lambda: (
            JSON_HEAD
            + rng.choice(
                [
                    b"Content-Length: -5\r\n",
                    b"Content-Length: abc\r\n",
                    b"Content-Length: 1, 2\r\n",
                    b"Content-Length: 99999999999999999999\r\n",
                    b"Content-Length: 5\r\nContent-Length: 6\r\n",
                    b"Content-Length: 50\r\nTransfer-Encoding: chunked\r\n",
                    b"Content-Length: 0x10\r\n",
                    b"Content-Length: 999999999\r\n",
                ]
            )
            + b"\r\n"
            + BODY
        ),
        "truncated body": lambda: (
            JSON_HEAD
            + b"Content-Length: %d\r\n\r\n" % (len(BODY) + rng.randint(1, 5000))
            + BODY[: rng.randint(0, len(BODY))]
        ),
        "mutated json": lambda: JSON_HEAD + b"Content-Length: %d\r\n\r\n" % len(BODY) + _flip(rng, BODY),
        "wrong content type": lambda: (
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: "
            + rng.choice(
                [b"application/octet-stream", b"application/x-python-pickle", b"text/plain", b"\xff"]
            )
            + b"\r\nContent-Length: %d\r\n\r\n" % len(BODY)
            + BODY
        ),
        "garbage": lambda: _junk(rng, 1, 3000),
        "bad path": lambda: (
            b"GET "
            + rng.choice([b"/", b"", b"http://x", b"//", b"/docs/static/"])
            + bytes(rng.choice(b"%\x7f\x80 \t#?;\\/..") for _ in range(rng.randint(1, 30)))
            + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        ),
        "upgrade": lambda: (
            b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: "
            + rng.choice([b"websocket", b"h2c", b"\xff"])
            + b"\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ),
        "expect 100 then nothing": lambda: (
            JSON_HEAD + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(BODY)
        ),
        "pipelined junk": lambda: (
            b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n" + _junk(rng, 1, 200) + b"\r\n\r\n"
        ),
    }


class SlowClient(threading.Thread):
    """Sends a request head one header line every ``gap`` seconds and records how the server ends it."""

    def __init__(self, port: int, gap: float) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.gap = gap
        self.reply = b""
        self.ended_after: float | None = None

    def run(self) -> None:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port), timeout=self.gap) as sock:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
            while time.monotonic() - started < HEAD_TIMEOUT_S + 10:
                try:
                    chunk = sock.recv(4096)
                except TimeoutError:
                    try:
                        sock.sendall(b"X-Slow: %d\r\n" % int(time.monotonic()))
                    except OSError:
                        break
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                self.reply += chunk
        self.ended_after = time.monotonic() - started


def _get(service: RunningService, path: str) -> tuple[int, float]:
    import httpx

    started = time.monotonic()
    status = httpx.get(f"{service.url}{path}", timeout=5).status_code
    return status, time.monotonic() - started


def _in_flight(service: RunningService) -> float:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(httpx.get(f"{service.url}/metrics", timeout=5).text):
        for sample in family.samples:
            if sample.name == "mlship_predict_in_flight":
                return float(sample.value)
    raise AssertionError("no in-flight gauge")


def test_500_malformed_requests_and_slow_clients_never_get_a_5xx_and_the_service_stays_up(
    make_project: Callable[..., Path],
) -> None:
    import httpx

    rng = random.Random(8)
    makers = malformed_requests(rng)
    with run_service(make_project(serving={"timeout_s": 2})) as service:
        service.wait_ready()
        slow = [SlowClient(service.port, gap=0.5) for _ in range(8)]
        for client in slow:
            client.start()
        silent = socket.create_connection(("127.0.0.1", service.port), timeout=HEAD_TIMEOUT_S + 60)
        opened = time.monotonic()
        answers: dict[str, Counter[int]] = {name: Counter() for name in makers}
        unanswered: Counter[str] = Counter()
        names = sorted(makers)
        for index in range(600):
            name = names[index % len(names)] if index < 2 * len(names) else rng.choice(names)
            reply = exchange(service.port, makers[name]())
            codes = statuses(reply)
            if not codes:
                unanswered[name] += 1
            answers[name].update(codes)
            if index % 100 == 50:  # meanwhile, with slow clients holding connections, the probes answer
                for path in ("/health/live", "/health/ready", "/metrics"):
                    status, seconds = _get(service, path)
                    assert status == 200 and seconds < 1.0, (path, status, seconds)
        for client in slow:
            client.join(timeout=HEAD_TIMEOUT_S + 15)
        assert silent.recv(100) == b""  # a connection that never says anything is closed too
        assert time.monotonic() - opened < HEAD_TIMEOUT_S + 5
        silent.close()
        assert service.process.poll() is None, service.log.read_text()[-3000:]
        server_errors = {name: c for name, c in answers.items() if any(code >= 500 for code in c)}
        assert not server_errors, server_errors
        seen = Counter[int]()
        for counts in answers.values():
            seen.update(counts)
        assert sum(seen.values()) >= 400, (seen, unanswered)  # most were answered, not just dropped
        assert {400, 404, 405, 415, 422, 431} <= set(seen), seen
        assert answers["broken header syntax"][400] > 0 and answers["bad method"][400] > 0
        assert answers["pipelined junk"][400] > 0
        for client in slow:  # cut off at the head timeout, told so, while still trickling
            assert client.ended_after is not None and client.ended_after < HEAD_TIMEOUT_S + 5, (
                client.ended_after
            )
            assert statuses(client.reply) == [408], client.reply[:200]
        assert _get(service, "/health/live")[0] == 200
        assert _get(service, "/health/ready")[0] == 200
        assert httpx.post(f"{service.url}/predict", json=ROW, timeout=5).status_code == 200
        assert _in_flight(service) == 0
        lines = service.log_lines()
        assert not [line for line in lines if line.get("level") == "error"], [
            line for line in lines if line.get("level") == "error"
        ][:3]
        assert "Traceback" not in service.log.read_text()


def test_an_oversized_request_head_is_431_and_is_not_buffered(make_project: Callable[..., Path]) -> None:
    with run_service(make_project()) as service:
        service.wait_ready()
        one_mb = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1024 * 1024 + b"\r\n\r\n"
        assert statuses(exchange(service.port, one_mb)) == [431]
        # 256 MB of header: the server stops reading long before the end (it would otherwise hold it all)
        sent = 0
        with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: ")
            block = b"a" * 1024 * 1024
            try:
                while sent < 256 * 1024 * 1024:
                    sock.sendall(block)
                    sent += len(block)
            except OSError:
                pass
        assert sent < 64 * 1024 * 1024, f"the server read {sent} bytes of one header"
        assert _get(service, "/health/live")[0] == 200
