"""Soak: a real service process under steady load from 16 clients for minutes; errors, latency and memory.

    python benchmarks/soak.py [--minutes 5] [--clients 16] [--workers 1] [--warmup 30] [--json]

Trains a small classifier on five columns of every schema type into a temporary project and serves it with
``python -m mlship.serving`` (supervisor + uvicorn worker) on 127.0.0.1. An asyncio load generator keeps
``--clients`` keep-alive connections busy with a mix of requests: single rows (80 %), batches of 2-64 rows
(10 %), invalid rows that must be refused with 422 (5 %), and /health/ready or /metrics (5 %). Any other
answer, a wrong number of predictions or a broken connection is an error.

It stops by itself after ``--minutes`` or ``--max-requests``, whichever comes first, and prints: requests,
errors, req/s, p50/p99 latency, the serving processes' resident memory (RSS) after the warm-up and at the
end, and the growth in per cent (sampled every few seconds, so a slow leak shows as a trend).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SOLUTION = '''
"""Soak model: a logistic regression over five columns of every schema type."""
from pathlib import Path

import joblib
import numpy as np


def features(rows):
    return np.column_stack([
        rows["amount"].to_numpy(dtype=float),
        rows["count"].to_numpy(dtype=float),
        (rows["channel"] == "web").to_numpy(dtype=float),
        rows["flag"].to_numpy(dtype=float),
        rows["score"].fillna(0.0).to_numpy(dtype=float),
    ])


class Model:
    def load(self, artifacts: Path) -> None:
        self.clf = joblib.load(artifacts / "model.joblib")
        self.classes_ = self.clf.classes_

    def predict(self, rows):
        return self.clf.predict(features(rows))

    def predict_proba(self, rows):
        return self.clf.predict_proba(features(rows))
'''

COLUMNS: list[dict[str, Any]] = [
    {"name": "amount", "type": "number", "nullable": False, "minimum": 0.0, "maximum": 10000.0},
    {"name": "count", "type": "integer", "nullable": False, "minimum": 0, "maximum": 100},
    {"name": "channel", "type": "string", "nullable": False, "enum": ["web", "pos"]},
    {"name": "flag", "type": "boolean", "nullable": False},
    {"name": "score", "type": "number", "nullable": True, "minimum": -1.0, "maximum": 1.0},
]


@dataclass
class SoakResult:
    """What a soak run measured."""

    seconds: float
    clients: int
    workers: int
    requests: int
    errors: int
    refused_as_expected: int  # the invalid rows answered 422
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    rss_start_mb: float  # the serving processes, after the warm-up
    rss_end_mb: float
    rss_growth_pct: float
    rss_samples_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MB)
    error_samples: list[str] = field(default_factory=list)


def write_project(root: Path, workers: int) -> Path:
    """Train the classifier and write solution.py, model/, schema.json and service.json into ``root``."""
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    n = 2000
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
    (root / "model").mkdir(parents=True, exist_ok=True)
    joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), root / "model" / "model.joblib")
    (root / "solution.py").write_text(SOLUTION)
    example = {"amount": 45.0, "count": 3, "channel": "web", "flag": False, "score": 0.5}
    schema = {
        "mlship_schema": 1,
        "task": "binary",
        "target": {"name": "is_fraud", "type": "integer", "classes": [0, 1]},
        "columns": COLUMNS,
        "example": example,
    }
    (root / "schema.json").write_text(json.dumps(schema))
    service = {
        "name": "soak",
        "version": "v1",
        "artifacts": "model/",
        "solution": "solution.py",
        "serving": {"workers": workers, "max_batch_rows": 1000},
    }
    (root / "service.json").write_text(json.dumps(service))
    return root


def random_row(rng: random.Random) -> dict[str, Any]:
    return {
        "amount": round(rng.uniform(0, 10000), 2),
        "count": rng.randint(0, 100),
        "channel": rng.choice(["web", "pos"]),
        "flag": rng.random() < 0.5,
        "score": None if rng.random() < 0.1 else round(rng.uniform(-1, 1), 4),
    }


# --- the service process ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serving_pids(supervisor: int) -> list[int]:
    """The supervisor and its worker processes."""
    pids = [supervisor]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == supervisor:
                pids.append(int(entry.name))
    return pids


def rss_mb(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def start_service(project: Path, port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    src = Path(__file__).resolve().parents[1] / "src"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH")) if p),
    }
    with log.open("wb") as sink:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlship.serving",
                "--project",
                str(project),
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )


def wait_ready(port: int, process: subprocess.Popen[bytes], workers: int, timeout: float = 120) -> None:
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health/ready")
            if connection.getresponse().status == 200 and len(serving_pids(process.pid)) > workers:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the service was not ready after {timeout:g} s")


def stop_service(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


# --- the load ---------------------------------------------------------------------------------------------


class Load:
    """Shared counters of the clients."""

    def __init__(self, deadline: float, max_requests: int, warmup_until: float) -> None:
        self.deadline = deadline
        self.max_requests = max_requests
        self.warmup_until = warmup_until
        self.requests = 0
        self.errors = 0
        self.refused = 0
        self.latencies: list[float] = []
        self.error_samples: list[str] = []

    def more(self) -> bool:
        return time.monotonic() < self.deadline and self.requests < self.max_requests

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 20:
            self.error_samples.append(what)


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, path: str, body: bytes | None
) -> tuple[int, bytes]:
    head = f"{method} {path} HTTP/1.1\r\nHost: soak\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"\r\n" + (body or b""))
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    status = int(status_line.split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return status, await reader.readexactly(length)


async def client(port: int, seed: int, load: Load) -> None:
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while load.more():
            pick = rng.random()
            rows: list[dict[str, Any]] | dict[str, Any]
            if pick < 0.80:
                method, path, rows, expected = "POST", "/predict", random_row(rng), 200
            elif pick < 0.90:
                rows = [random_row(rng) for _ in range(rng.randint(2, 64))]
                method, path, expected = "POST", "/predict", 200
            elif pick < 0.95:
                rows = {**random_row(rng), "amount": -rng.uniform(1, 100)}  # below the minimum
                method, path, expected = "POST", "/predict", 422
            else:
                method, path, rows, expected = "GET", rng.choice(["/health/ready", "/metrics"]), {}, 200
            body = json.dumps(rows).encode() if method == "POST" else None
            started = time.monotonic()
            try:
                status, answer = await _exchange(reader, writer, method, path, body)
            except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError) as error:
                load.requests += 1
                load.error(f"{method} {path}: {type(error).__name__}: {error}")
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            elapsed = time.monotonic() - started
            load.requests += 1
            if started >= load.warmup_until:
                load.latencies.append(elapsed)
            if status != expected:
                load.error(f"{method} {path}: {status} (expected {expected}): {answer[:200]!r}")
            elif expected == 422:
                load.refused += 1
            elif path == "/predict":
                count = 1 if isinstance(rows, dict) else len(rows)
                if len(json.loads(answer).get("predictions", ())) != count:
                    load.error(f"POST /predict: not {count} predictions: {answer[:200]!r}")
    finally:
        writer.close()


async def sample_memory(
    pids: list[int], load: Load, started: float, samples: list[tuple[float, float]], every: float
) -> None:
    while load.more():
        samples.append((round(time.monotonic() - started, 1), round(rss_mb(pids), 2)))
        await asyncio.sleep(every)


async def drive(
    port: int, clients: int, pids: list[int], seconds: float, warmup: float, max_requests: int
) -> Any:
    started = time.monotonic()
    load = Load(started + seconds, max_requests, started + warmup)
    samples: list[tuple[float, float]] = []
    every = max(0.5, min(10.0, seconds / 30))
    sampler = asyncio.ensure_future(sample_memory(pids, load, started, samples, every))
    await asyncio.gather(*(client(port, seed, load) for seed in range(clients)))
    await sampler
    samples.append((round(time.monotonic() - started, 1), round(rss_mb(pids), 2)))
    return load, samples, time.monotonic() - started


def run_soak(
    seconds: float = 300.0,
    *,
    clients: int = 16,
    workers: int = 1,
    warmup: float = 30.0,
    max_requests: int = 5_000_000,
    workdir: Path | None = None,
) -> SoakResult:
    """Serve the soak project on loopback and load it for ``seconds`` (or ``max_requests``)."""
    with tempfile.TemporaryDirectory(prefix="mlship-soak-") as temporary:
        root = Path(workdir or temporary)
        project = write_project(root / "project", workers)
        port = free_port()
        process = start_service(project, port, workers, root / "service.log")
        try:
            wait_ready(port, process, workers)
            pids = serving_pids(process.pid)
            load, samples, elapsed = asyncio.run(drive(port, clients, pids, seconds, warmup, max_requests))
            alive = process.poll() is None
        finally:
            code = stop_service(process)
        if not alive:
            load.error(f"the service died during the soak (exit code {code})")
    after_warmup = [mb for at, mb in samples if at >= min(warmup, elapsed / 2)] or [samples[-1][1]]
    start_mb, end_mb = after_warmup[0], samples[-1][1]
    latencies = sorted(load.latencies) or [0.0]
    return SoakResult(
        seconds=round(elapsed, 1),
        clients=clients,
        workers=workers,
        requests=load.requests,
        errors=load.errors,
        refused_as_expected=load.refused,
        requests_per_s=round(load.requests / elapsed, 1),
        p50_ms=round(statistics.median(latencies) * 1000, 2),
        p99_ms=round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
        rss_start_mb=start_mb,
        rss_end_mb=end_mb,
        rss_growth_pct=round((end_mb - start_mb) / start_mb * 100, 2),
        rss_samples_mb=samples,
        error_samples=load.error_samples,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=5.0, help="how long to load the service (default 5)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent keep-alive clients (default 16)")
    parser.add_argument("--workers", type=int, default=1, help="service worker processes (default 1)")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before memory is the baseline")
    parser.add_argument("--max-requests", type=int, default=5_000_000, help="stop after this many requests")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    args = parser.parse_args()
    result = run_soak(
        args.minutes * 60,
        clients=args.clients,
        workers=args.workers,
        warmup=args.warmup,
        max_requests=args.max_requests,
    )
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        print(f"soak: {result.seconds:g} s, {result.clients} clients, {result.workers} worker(s)")
        print(f"  requests   {result.requests} ({result.requests_per_s:g}/s), errors {result.errors}")
        print(f"  refused    {result.refused_as_expected} invalid rows answered 422, as expected")
        print(f"  latency    p50 {result.p50_ms:g} ms, p99 {result.p99_ms:g} ms")
        print(
            f"  memory     RSS {result.rss_start_mb:.1f} MB after warm-up, "
            f"{result.rss_end_mb:.1f} MB at the end ({result.rss_growth_pct:+.2f} %)"
        )
        trend = ", ".join(
            f"{at:g}s {mb:.1f}"
            for at, mb in result.rss_samples_mb[:: max(1, len(result.rss_samples_mb) // 10)]
        )
        print(f"  RSS trend  {trend}")
        for sample in result.error_samples:
            print(f"  error      {sample}")
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
