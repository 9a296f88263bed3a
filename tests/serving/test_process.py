"""The service as real processes (supervisor + uvicorn workers): signals, crashes and sockets.

Malformed raw HTTP is in test_raw_http_fuzz.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROW, RunningService, run_service

pytestmark = pytest.mark.slow


def post(service: RunningService, payload: Any, timeout: float = 30, **headers: str) -> Any:
    import httpx

    return httpx.post(f"{service.url}/predict", json=payload, timeout=timeout, headers=headers)


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def started_workers(service: RunningService, count: int) -> set[int]:
    """The worker pids, once the service is ready and all ``count`` workers have started."""
    service.wait_ready()
    deadline = time.monotonic() + 60
    while len(children(service.process.pid)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return children(service.process.pid)


def in_flight(service: RunningService) -> float:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "mlship_predict_in_flight":
                return float(sample.value)
    raise AssertionError("no in-flight gauge")


def test_sigterm_finishes_in_flight_requests_then_exits_0(make_project: Callable[..., Path]) -> None:
    with run_service(make_project("slow", serving={"timeout_s": 20})) as service:
        service.wait_ready()
        results: list[int] = []
        threads = [
            threading.Thread(target=lambda: results.append(post(service, {**ROW, "delay": 1.0}).status_code))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.4)
        service.process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=30)
        assert results == [200, 200, 200, 200]
        assert service.process.wait(timeout=30) == 0


def test_listens_on_loopback_only_by_default(make_project: Callable[..., Path]) -> None:
    with run_service(make_project()) as service:
        service.wait_ready()
        listening = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        mine = [
            fields[1]
            for fields in listening
            if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == service.port
        ]
        assert mine == [f"0100007F:{service.port:04X}"]
        assert not [
            f
            for f in Path("/proc/net/tcp6").read_text().splitlines()[1:]
            if f.split()[3] == "0A" and int(f.split()[1].split(":")[1], 16) == service.port
        ]


@pytest.mark.parametrize("damage", ["corrupt", "tampered"])
def test_a_bad_artifact_exits_non_zero_with_one_clear_line(
    make_project: Callable[..., Path], damage: str
) -> None:
    import hashlib

    project = make_project()
    (project / "model" / "model.joblib").write_bytes(b"not a model at all")
    if damage == "corrupt":  # the hash matches, loading fails
        service_json = json.loads((project / "service.json").read_text())
        service_json["artifact_sha256"]["model/model.joblib"] = hashlib.sha256(
            b"not a model at all"
        ).hexdigest()
        (project / "service.json").write_text(json.dumps(service_json))
    with run_service(project, workers=2) as service:
        code = service.process.wait(timeout=60)
        assert code == 3
        lines = service.log_lines()
        failures = [line for line in lines if line.get("event") == "startup_failed"]
        assert len(failures) == 1, lines
        assert "model" in failures[0]["message"]
        assert not any("Traceback" in json.dumps(line) for line in lines)
        assert not children(service.process.pid)


def test_auto_starts_a_worker_per_core_each_pinned_with_its_share_of_native_threads(
    make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlship.serving.runner import THREAD_POOL_ENV
    from mlship.serving.settings import MAX_AUTO_WORKERS, usable_cpus

    for name in THREAD_POOL_ENV:
        monkeypatch.delenv(name, raising=False)
    expected = min(usable_cpus(), MAX_AUTO_WORKERS)
    with run_service(make_project(), workers="auto", env={"OPENBLAS_NUM_THREADS": "3"}) as service:
        workers = started_workers(service, expected)
        assert len(workers) == expected
        for pid in workers:
            environ = dict(
                item.split("=", 1)
                for item in Path(f"/proc/{pid}/environ").read_text().split("\0")
                if "=" in item
            )
            share = str(max(1, usable_cpus() // expected))
            assert (environ["OMP_NUM_THREADS"], environ["MKL_NUM_THREADS"]) == (share, share)
            assert environ["OPENBLAS_NUM_THREADS"] == "3"  # the user's own setting is kept
        mine = os.sched_getaffinity(0)
        if len(mine) == expected > 1:  # a core per worker: each stays on its own
            pinned = [os.sched_getaffinity(pid) for pid in workers]
            assert all(len(cpus) == 1 for cpus in pinned) and set().union(*pinned) == mine, pinned


def test_workers_end_when_their_supervisor_is_killed(make_project: Callable[..., Path]) -> None:
    with run_service(make_project(), workers=2) as service:
        workers = started_workers(service, 2)
        assert len(workers) == 2
        service.process.kill()
        service.process.wait()
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = {pid for pid in workers if Path(f"/proc/{pid}/stat").exists()}
        zombies = {
            pid for pid in left if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        }
        assert left == zombies, f"workers still running after their supervisor was killed: {left - zombies}"


def test_a_killed_worker_is_replaced_and_metrics_sum_over_workers(make_project: Callable[..., Path]) -> None:
    import httpx

    with run_service(make_project(), workers=2) as service:
        workers = started_workers(service, 2)
        assert len(workers) == 2
        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        for _ in range(20):  # the survivor answers meanwhile
            assert post(service, ROW).status_code == 200
        deadline = time.monotonic() + 60
        while (
            len(children(service.process.pid)) < 2 or victim in children(service.process.pid)
        ) and time.monotonic() < deadline:
            time.sleep(0.1)
        replaced = children(service.process.pid)
        assert len(replaced) == 2 and victim not in replaced
        assert any(line.get("event") == "worker_died" for line in service.log_lines())
        served_before = _predict_200(service)
        for _ in range(30):
            assert post(service, ROW).status_code == 200
        for _ in range(5):  # whichever worker answers the scrape, it reports both workers' counts
            assert _predict_200(service) == served_before + 30
        assert httpx.get(f"{service.url}/health/ready").status_code == 200


def _predict_200(service: RunningService) -> float:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "mlship_requests_total" and sample.labels == {
                "route": "/predict",
                "status": "200",
            }:
                total += sample.value
    return total


def _raw_predict(port: int, payload: dict[str, Any]) -> socket.socket:
    body = json.dumps(payload).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    return sock


def _raw_partial_predict(port: int) -> socket.socket:
    """A client that sends its headers and half its body, then nothing more: it holds a slot."""
    body = json.dumps(ROW).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[: len(body) // 2]
    )
    return sock


def _status(sock: socket.socket) -> int:
    reply = b""
    while b"\r\n" not in reply:
        chunk = sock.recv(1024)
        if not chunk:
            break
        reply += chunk
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0


def _wait_in_flight(service: RunningService, predicate: Callable[[float], bool], seconds: float) -> float:
    deadline = time.monotonic() + seconds
    value = in_flight(service)
    while not predicate(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = in_flight(service)
    return value


def test_clients_that_leave_free_their_slots_and_health_answers_while_all_are_busy(
    make_project: Callable[..., Path],
) -> None:
    import httpx

    with run_service(make_project("slow", serving={"max_concurrency": 20, "timeout_s": 30})) as service:
        service.wait_ready()
        held = [_raw_predict(service.port, {**ROW, "delay": 3.0})]
        time.sleep(0.2)  # the first one is inside the model now, blocking it
        held += [_raw_predict(service.port, {**ROW, "delay": 0.0}) for _ in range(9)]  # waiting for it
        held += [_raw_partial_predict(service.port) for _ in range(10)]  # still sending their body
        assert _wait_in_flight(service, lambda v: v >= 20, 5) == 20
        for path in ("/health/live", "/health/ready", "/metrics"):
            started = time.monotonic()
            assert httpx.get(f"{service.url}{path}", timeout=5).status_code == 200
            assert time.monotonic() - started < 1.0, path
        refused = post(service, {**ROW, "delay": 0.0}, timeout=5)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        for sock in held:  # 20 clients abort mid-request: 10 waiting for the model, 10 mid-body
            sock.close()
        # every slot is free again while the model is still busy with the first request
        assert _wait_in_flight(service, lambda v: v == 0, 2) == 0
        # ... and the service admits its full concurrency again, exactly: 20 in flight, the 21st refused
        again = [_raw_predict(service.port, {**ROW, "delay": 1.0}) for _ in range(20)]
        assert _wait_in_flight(service, lambda v: v >= 20, 5) == 20
        assert post(service, {**ROW, "delay": 0.0}, timeout=5).status_code == 503
        statuses = [_status(sock) for sock in again]
        for sock in again:
            sock.close()
        assert statuses == [200] * 20
        assert _wait_in_flight(service, lambda v: v == 0, 2) == 0
        assert post(service, {**ROW, "delay": 0.0}).status_code == 200


def test_serve_in_process_with_an_info_built_by_the_cli(make_project: Callable[..., Path]) -> None:
    """``mlship serve`` passes paths from mlship.yaml: no service.json, other folder and file names."""
    import shutil
    import subprocess
    import sys

    import httpx

    from .conftest import free_port

    project = make_project(hashes=False)
    (project / "service.json").unlink()
    shutil.move(project / "model", project / "artifacts")
    shutil.move(project / "solution.py", project / "fraud_model.py")
    port = free_port()
    code = f"""
import sys
from mlship.serving import ServiceInfo, ServiceSettings, serve
info = ServiceInfo(name="fraud", version="dev", artifacts="artifacts/", solution="fraud_model.py")
sys.exit(serve({str(project)!r}, ServiceSettings.default().with_overrides(workers=1), port={port}, info=info,
            supervise=False))
"""
    process = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json=ROW)
        assert answer.status_code == 200 and answer.json()["model_version"] == "dev"
        assert children(process.pid) == set()  # no supervisor: the server is this very process
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_broken_service_json_exits_3_with_one_line(make_project: Callable[..., Path]) -> None:
    project = make_project()
    (project / "service.json").write_text('{"serving": {"workers": 0}}')
    with run_service(project) as service:
        assert service.process.wait(timeout=30) == 3
        lines = service.log_lines()
        assert len(lines) == 1 and "serving.workers" in lines[0]["message"], lines
