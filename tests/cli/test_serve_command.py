"""`mlship serve` as a user runs it: a real process, a real socket, real HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.build_projects import write_light_project


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(project: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Start `mlship serve PROJECT --port P ARGS`; yield the process and the port its log says."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mlship", "serve", str(project), "--port", str(free_port()), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stderr is not None
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            if line.startswith("{") and json.loads(line).get("event") == "listening":
                port = int(json.loads(line)["port"])
        assert port is not None, f"mlship serve did not start (exit code {process.poll()})"
        yield process, port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def listening_addresses(port: int) -> set[str]:
    """The local addresses LISTEN sockets on `port` are bound to, from /proc/net/tcp and tcp6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def wait_ready(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the service never became ready")


@pytest.mark.slow
def test_serve_listens_on_loopback_only_by_default_and_predicts(tmp_path: Path) -> None:
    project = write_light_project(tmp_path / "fraud-detector")

    with serving(project) as (process, port):
        wait_ready(port)
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, and nothing else
        answer = httpx.post(
            f"http://127.0.0.1:{port}/predict",
            json=[{"amount": 50, "channel": "web"}, {"amount": 500, "channel": "pos"}],
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [0, 1]
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=20) == 0


@pytest.mark.slow
def test_serve_with_host_listens_on_every_interface(tmp_path: Path) -> None:
    project = write_light_project(tmp_path / "fraud-detector")
    with serving(project, "--host", "0.0.0.0") as (_process, port):
        wait_ready(port)
        assert listening_addresses(port) == {"00000000"}


@pytest.mark.slow
def test_serve_serves_the_configured_layout_not_the_defaults(tmp_path: Path) -> None:
    project = write_light_project(tmp_path / "fraud-detector")
    (project / "model").rename(project / "artefacts")
    (project / "helpers.py").write_text("OFFSET = 1000\n")
    solution = (project / "solution.py").read_text()
    solution = solution.replace("value > self.threshold", "value + OFFSET > self.threshold")
    (project / "solution.py").write_text("from helpers import OFFSET\n" + solution)
    config = (project / "mlship.yaml").read_text().replace("artifacts: model/", "artifacts: artefacts/")
    (project / "mlship.yaml").write_text(config)

    with serving(project) as (_process, port):
        wait_ready(port)
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json={"amount": 50, "channel": "web"})
        assert answer.json()["predictions"] == [1]


def test_a_port_in_use_is_a_usage_error(tmp_path: Path) -> None:
    project = write_light_project(tmp_path / "fraud-detector")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "mlship", "serve", str(project), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_a_broken_solution_is_refused_before_serving(tmp_path: Path) -> None:
    project = write_light_project(tmp_path / "fraud-detector", solution="import nope_not_installed\n")
    result = subprocess.run(
        [sys.executable, "-m", "mlship", "serve", str(project), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 7
    assert "solution.py line 1: ModuleNotFoundError" in result.stderr


@pytest.mark.slow
def test_a_module_only_an_import_reveals_is_found_and_served(tmp_path: Path) -> None:
    """Reading the code misses `importlib.import_module("rules")`; the service fails to start, the child
    import finds rules.py, and the service starts again with it."""
    solution = (
        "import importlib\nfrom pathlib import Path\n\nrules = importlib.import_module('rules')\n\n\n"
        "class Model:\n    def load(self, artifacts: Path) -> None:\n        pass\n\n"
        "    def predict(self, rows):\n        return [rules.decide(v) for v in rows['amount']]\n"
    )
    project = write_light_project(tmp_path / "fraud-detector", solution=solution)
    (project / "rules.py").write_text("def decide(amount):\n    return int(amount > 100)\n")
    with serving(project) as (_, port):
        wait_ready(port)
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json=[{"amount": 500, "channel": "pos"}])
        assert answer.json()["predictions"] == [1]
    assert (project / ".mlship" / "serve" / "rules.py").is_file()
