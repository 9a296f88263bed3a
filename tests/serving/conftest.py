"""Fixture projects for the serving runtime, trained at test time (a few milliseconds each).

``make_project(kind, ...)`` writes solution.py, model/, schema.json and service.json into a fresh folder:

- ``classifier``: a LogisticRegression on five columns of every type (number with bounds, integer, string
  enum, boolean, nullable number). Its ``predict`` raises on the marked input ``amount == 666``, and it
  records the size of every batch it is given in ``Model.batches``.
- ``slow``: the same columns plus ``delay`` (seconds); ``predict`` sleeps ``max(delay)`` first.
- ``regressor``: a LinearRegression on two numbers, target quantiles in the schema.

solution.py of the first two also has ``Spare``, a spare model for ``fallback:`` (the training rule itself,
sleeping ``delay`` on rows marked ``amount == 777``). With ``MLSHIP_TEST_CALLS`` set to a file, every
``predict`` call of either class appends ``main`` or ``spare`` to it (a call counter across processes).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROW = {"amount": 45.0, "count": 3, "channel": "web", "flag": False, "score": 0.5}
MARKED_AMOUNT = 666.0
SLOW_SPARE_AMOUNT = 777.0  # Spare sleeps ``delay`` on these rows
CALLS_ENV = "MLSHIP_TEST_CALLS"

CLASSIFIER_SOLUTION = '''
"""Test model: a logistic regression over five columns of every schema type."""
import os
import time
from pathlib import Path

import joblib
import numpy as np

LOAD_DELAY_FILE = "load_delay.txt"


def count_call(who):
    path = os.environ.get("MLSHIP_TEST_CALLS")
    if path:
        with open(path, "a") as calls:
            calls.write(who + "\\n")


def features(rows):
    return np.column_stack([
        rows["amount"].to_numpy(dtype=float),
        rows["count"].to_numpy(dtype=float),
        (rows["channel"] == "web").to_numpy(dtype=float),
        rows["flag"].to_numpy(dtype=float),
        rows["score"].fillna(0.0).to_numpy(dtype=float),
    ])


class Model:
    batches = []

    def load(self, artifacts: Path) -> None:
        delay = artifacts / LOAD_DELAY_FILE
        if delay.exists():
            time.sleep(float(delay.read_text()))
        self.clf = joblib.load(artifacts / "model.joblib")
        self.classes_ = self.clf.classes_

    def predict(self, rows):
        count_call("main")
        Model.batches.append(len(rows))
        if (rows["amount"] == 666.0).any():
            raise ValueError("marked input 666 reached the model")
        if "delay" in rows:
            time.sleep(float(rows["delay"].max()))
        return self.clf.predict(features(rows))

    def predict_proba(self, rows):
        return self.clf.predict_proba(features(rows))


class Spare:
    """The spare for fallback: the rule the data was made with; sleeps on rows marked 777."""

    def load(self, artifacts: Path) -> None:
        self.classes_ = np.array([0, 1])

    def predict(self, rows):
        count_call("spare")
        if "delay" in rows and (rows["amount"] == 777.0).any():
            time.sleep(float(rows["delay"].max()))
        return ((rows["amount"] > 300) ^ (rows["channel"] == "web")).to_numpy(dtype=int)

    def predict_proba(self, rows):
        labels = ((rows["amount"] > 300) ^ (rows["channel"] == "web")).to_numpy(dtype=float)
        return np.column_stack([1.0 - labels, labels])
'''

REGRESSOR_SOLUTION = """
from pathlib import Path

import joblib


class Model:
    def load(self, artifacts: Path) -> None:
        self.reg = joblib.load(artifacts / "model.joblib")

    def predict(self, rows):
        return self.reg.predict(rows[["x1", "x2"]].to_numpy(dtype=float))
"""

CLASSIFIER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "amount",
        "type": "number",
        "nullable": False,
        "minimum": 0.0,
        "maximum": 10000.0,
        "observed": {
            "min": 1.0,
            "max": 900.0,
            "null_fraction": 0.0,
            "quantiles": {"0.01": 2.0, "0.25": 20.0, "0.5": 45.0, "0.75": 90.0, "0.99": 800.0},
        },
    },
    {"name": "count", "type": "integer", "nullable": False, "minimum": 0, "maximum": 100},
    {
        "name": "channel",
        "type": "string",
        "nullable": False,
        "enum": ["web", "pos"],
        "observed": {"frequencies": {"web": 0.6, "pos": 0.4}},
    },
    {"name": "flag", "type": "boolean", "nullable": False},
    {"name": "score", "type": "number", "nullable": True, "minimum": -1.0, "maximum": 1.0},
]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _train_classifier(artifacts: Path) -> None:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    n = 300
    x = np.column_stack(
        [
            rng.uniform(1, 900, n),
            rng.integers(0, 50, n),
            rng.integers(0, 2, n),
            rng.integers(0, 2, n),
            rng.uniform(-1, 1, n),
        ]
    )
    y = ((x[:, 0] > 300) ^ (x[:, 2] > 0)).astype(int)
    joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), artifacts / "model.joblib")


def _train_regressor(artifacts: Path) -> None:
    import joblib
    import numpy as np
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 2))
    joblib.dump(LinearRegression().fit(x, 3 * x[:, 0] - x[:, 1] + 10), artifacts / "model.joblib")


def write_project(
    root: Path,
    kind: str = "classifier",
    *,
    serving: dict[str, Any] | None = None,
    hashes: bool = True,
    example: dict[str, Any] | None = None,
    version: str = "v7",
) -> Path:
    """Write a complete fixture project into ``root`` and return it."""
    artifacts = root / "model"
    artifacts.mkdir(parents=True, exist_ok=True)
    if kind == "regressor":
        _train_regressor(artifacts)
        (root / "solution.py").write_text(REGRESSOR_SOLUTION)
        schema: dict[str, Any] = {
            "mlship_schema": 1,
            "task": "regression",
            "target": {
                "name": "y",
                "type": "number",
                "observed": {"quantiles": {"0.25": 8.0, "0.5": 10.0, "0.75": 12.0}},
            },
            "columns": [
                {"name": "x1", "type": "number", "nullable": False},
                {"name": "x2", "type": "number", "nullable": False},
            ],
            "example": {"x1": 0.1, "x2": -0.2},
        }
    else:
        _train_classifier(artifacts)
        (root / "solution.py").write_text(CLASSIFIER_SOLUTION)
        columns = [dict(c) for c in CLASSIFIER_COLUMNS]
        row = dict(ROW)
        if kind == "slow":
            columns.append(
                {"name": "delay", "type": "number", "nullable": False, "minimum": 0, "maximum": 60}
            )
            row["delay"] = 0.0
        schema = {
            "mlship_schema": 1,
            "task": "binary",
            "target": {"name": "is_fraud", "type": "integer", "classes": [0, 1]},
            "columns": columns,
            "example": row,
        }
    (root / "schema.json").write_text(json.dumps(schema, indent=2))
    service: dict[str, Any] = {
        "name": f"{kind}-service",
        "version": version,
        "artifacts": "model/",
        "solution": "solution.py",
        "serving": serving or {},
    }
    if hashes:
        service["artifact_sha256"] = {
            f"model/{p.name}": sha256(p) for p in artifacts.iterdir() if p.is_file()
        }
    if example is not None:
        service["example"] = example
    (root / "service.json").write_text(json.dumps(service, indent=2))
    return root


@pytest.fixture(scope="session")
def _trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("trained")
    return {kind: write_project(base / kind, kind) for kind in ("classifier", "slow", "regressor")}


@pytest.fixture
def make_project(tmp_path: Path, _trained: dict[str, Path]) -> Callable[..., Path]:
    """Copy a trained fixture project into a fresh folder, with service.json rewritten as asked."""
    counter = iter(range(1000))

    def make(
        kind: str = "classifier",
        *,
        serving: dict[str, Any] | None = None,
        hashes: bool = True,
        example: dict[str, Any] | None = None,
        version: str = "v7",
        fallback: dict[str, Any] | None = None,
    ) -> Path:
        root = tmp_path / f"{kind}-{next(counter)}"
        shutil.copytree(_trained[kind], root)
        service = json.loads((root / "service.json").read_text())
        service["serving"] = serving or {}
        service["version"] = version
        if not hashes:
            service.pop("artifact_sha256", None)
        if example is not None:
            service["example"] = example
        if fallback is not None:
            service["fallback"] = fallback
        (root / "service.json").write_text(json.dumps(service, indent=2))
        return root

    return make


@pytest.fixture
def client_for(make_project: Callable[..., Path]) -> Iterator[Callable[..., Any]]:
    """Start an in-process app (model loaded before the first request) and return its TestClient."""
    from starlette.testclient import TestClient

    from mlship.serving import create_app

    clients: list[TestClient] = []

    def start(
        kind: str = "classifier", *, project: Path | None = None, log_stream: Any = None, **options: Any
    ) -> TestClient:
        root = project or make_project(kind, **options)
        client = TestClient(
            create_app(root, wait_for_model=True, log_stream=log_stream), raise_server_exceptions=False
        )
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(client_for: Callable[..., Any]) -> Any:
    return client_for()


# --- real processes ---


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningService:
    """A ``python -m mlship.serving`` process and where it listens."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                lines.append({"raw": line})
        return lines

    def wait_ready(self, timeout: float = 60.0) -> float:
        import httpx

        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise AssertionError(f"service exited with {self.process.returncode}: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not ready after {timeout} s: {self.log.read_text()}")


@contextmanager
def run_service(
    project: Path,
    *args: str,
    workers: int | str = 1,
    port: int | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[RunningService]:
    """Run the service as a real process (supervisor + workers); stop it with SIGTERM afterwards."""
    import os

    port = port or free_port()
    log = project / f"service-{port}.log"
    command = [
        sys.executable,
        "-m",
        "mlship.serving",
        "--project",
        str(project),
        "--port",
        str(port),
        "--workers",
        str(workers),
        *args,
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    try:
        yield RunningService(process, port, log)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
