"""Serving benchmark: mlship's service against a hand-written FastAPI + pydantic service and a bare ASGI app.

    python benchmarks/serving.py [--duration 3] [--rounds 7] [--starts 5] [--workers N] [--image REF] [--json]

One run trains a scikit-learn pipeline (StandardScaler + LogisticRegression on 20 numeric features) into a
temporary project (solution.py, model/, schema.json, service.json) and serves it three ways, each as real
uvicorn processes (mlship with its default worker count, the others with one worker per core, their best):

- **mlship**: ``python -m mlship.serving`` (the runtime every image runs);
- **reference**: a FastAPI app with a pydantic row model, calling the same model per request;
- **floor**: a bare ASGI app answering a constant (the most any Python server could do here).

All three run in one virtualenv made like the image's (cached under ~/.cache/mlship): the serving
runtime's requirements and the model's (scikit-learn, pandas, joblib at this environment's versions),
plus FastAPI for the reference; nothing of mlship's own tooling (pyarrow, Jupyter, docker), which would
weigh on start-up and memory in a way no image does.

The same load generator (wrk, from Debian, with a Lua script that rotates 100 different rows) drives the
services in rounds: all three are up at once and each round loads them in turn at 1 and 16 concurrent
connections (and mlship at 1 connection with ``?predictions_only=true`` too), right after timing the
model's own single-row predict-from-a-dict in a process of the same virtualenv. Ratios to the reference and
differences to the model's own time are taken within each round, so the machine's drift between rounds
cancels; the report gives their medians. Also printed: req/s, p50/p99 latency, batch-of-1000 latency,
cold start (process start to the first 200 on /health/ready; the median of --starts, next to the model's
own import + load + predict in a fresh process) and resident memory per worker. During the first 16-client
round a sample of answers is checked against the model's own predictions.

``--image REF`` also benchmarks an image built from this benchmark's project, ``--build-image BASE`` builds
one first with ``mlship build --base-image BASE`` (docker or podman; skipped when neither answers).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FEATURES = [f"f{i}" for i in range(20)]
HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

SOLUTION = '''
"""Benchmark model: a scikit-learn pipeline on 20 numeric features."""
from pathlib import Path

import joblib


class Model:
    def load(self, artifacts: Path) -> None:
        self.pipeline = joblib.load(artifacts / "pipeline.joblib")
        self.classes_ = self.pipeline.classes_

    def predict(self, rows):
        return self.pipeline.predict(rows)

    def predict_proba(self, rows):
        return self.pipeline.predict_proba(rows)
'''

REFERENCE = '''
"""The reference: how one would hand-write this service with FastAPI and pydantic."""
import os
from pathlib import Path
from typing import Union

import joblib
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel, Field

pipeline = joblib.load(Path(os.environ["BENCH_PROJECT"]) / "model" / "pipeline.joblib")
classes = pipeline.classes_.tolist()


class Row(BaseModel):
{fields}


app = FastAPI()


@app.get("/health/ready")
def ready():
    return {{"status": "ready"}}


@app.post("/predict")
def predict(body: Union[Row, list[Row]]):
    rows = body if isinstance(body, list) else [body]
    frame = pd.DataFrame([row.model_dump() for row in rows])
    return {{"predictions": pipeline.predict(frame).tolist(),
            "probabilities": pipeline.predict_proba(frame).tolist(), "classes": classes}}
'''

FLOOR = '''
"""The floor: a bare ASGI app that reads the body and answers a constant."""
BODY = b'{"predictions":[0]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
'''

MLSHIP_YAML = """\
name: mlship-bench
python: "3.11"
model: {solution: solution.py, artifacts: model/}
schema: schema.json
evaluation:
  data: data/test.csv
  target: y
  metrics: {accuracy: {min: 0.5}}
serving: {workers: %(workers)d}
"""

WRK_SCRIPT = """
local bodies = {}
for line in io.lines("%(rows)s") do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, "%(path)s", nil, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "errors": %%d, "non2xx": %%d, ' ..
    '"p50_us": %%d, "p99_us": %%d}\\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class Figures:
    """What one service measured, round by round (the report shows medians)."""

    name: str
    rps: dict[int, list[float]] = field(default_factory=dict)
    p50_ms: dict[int, list[float]] = field(default_factory=dict)
    p99_ms: dict[int, list[float]] = field(default_factory=dict)
    errors: int = 0
    batch_1000_ms: float | None = None
    cold_start_s: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    p50_only_ms: list[float] = field(default_factory=list)  # 1 client, ?predictions_only=true (mlship)

    def median(self, table: dict[int, list[float]], clients: int) -> float:
        return statistics.median(table[clients]) if table.get(clients) else float("nan")


@dataclass
class Paired:
    """Figures taken side by side in each round, so that the machine's drift between rounds cancels."""

    ratio_16: list[float] = field(default_factory=list)  # mlship req/s ÷ the reference's, 16 clients
    own_ms: list[float] = field(default_factory=list)  # the model's own predict + predict_proba
    own_predict_ms: list[float] = field(default_factory=list)  # the model's own predict
    excess_ms: list[float] = field(default_factory=list)  # mlship p50@1 − own_ms
    excess_only_ms: list[float] = field(default_factory=list)  # predictions_only p50@1 − own_predict_ms


# --- the project ------------------------------------------------------------------------------------------


def make_project(root: Path, workers: int) -> tuple[Any, list[dict[str, float]]]:
    """Train the pipeline and write the project; return the pipeline and 100 sample rows."""
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(42)
    x = pd.DataFrame(rng.normal(size=(5000, len(FEATURES))), columns=FEATURES)
    y = (x.to_numpy() @ rng.normal(size=len(FEATURES)) + rng.normal(scale=0.5, size=len(x)) > 0).astype(int)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    (root / "model").mkdir(parents=True)
    joblib.dump(pipeline, root / "model" / "pipeline.joblib")
    (root / "solution.py").write_text(SOLUTION)
    columns = [
        {
            "name": name,
            "type": "number",
            "nullable": False,
            "minimum": round(float(x[name].min()) - 1, 3),
            "maximum": round(float(x[name].max()) + 1, 3),
        }
        for name in FEATURES
    ]
    rows = [
        {k: round(float(v), 6) for k, v in row.items()}
        for row in x.sample(100, random_state=1).to_dict("records")
    ]
    schema = {
        "mlship_schema": 1,
        "task": "binary",
        "target": {"name": "y", "type": "integer", "classes": [0, 1]},
        "columns": columns,
        "example": rows[0],
    }
    (root / "schema.json").write_text(json.dumps(schema))
    service = {
        "name": "bench",
        "version": "v1",
        "artifacts": "model/",
        "solution": "solution.py",
        "serving": {"workers": workers},
        "example": rows[0],
    }
    (root / "service.json").write_text(json.dumps(service))
    (root / "reference_app.py").write_text(
        REFERENCE.format(
            fields="\n".join(
                f"    {name}: float = Field(ge={c['minimum']}, le={c['maximum']})"
                for name, c in zip(FEATURES, columns, strict=True)
            )
        )
    )
    (root / "floor_app.py").write_text(FLOOR)
    (root / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    # what `mlship build` needs besides (for --build-image)
    (root / "mlship.yaml").write_text(MLSHIP_YAML % {"workers": workers})
    (root / "requirements.in").write_text("scikit-learn\npandas\njoblib\n")
    (root / "data").mkdir()
    test = x.iloc[:500].copy()
    test["y"] = y[:500]
    test.to_csv(root / "data" / "test.csv", index=False)
    return pipeline, rows


OWN_TIMER = """
import json, statistics, sys, time
import joblib, pandas as pd

pipeline = joblib.load("model/pipeline.joblib")
row = json.loads(open("rows.jsonl").readline())
for line in sys.stdin:
    proba, seconds = json.loads(line)
    samples, deadline = [], time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        frame = pd.DataFrame([row])
        pipeline.predict(frame)
        if proba:
            pipeline.predict_proba(frame)
        samples.append(time.perf_counter() - started)
    print(json.dumps(statistics.median(samples[len(samples) // 10 :]) * 1000), flush=True)
"""


class OwnTimer:
    """The model's own single-row time from a dict (``predict(pd.DataFrame([row]))``, and
    ``predict_proba`` on the same frame), timed on demand in a process of the services' virtualenv."""

    def __init__(self, project: Path, python: str) -> None:
        self.process = subprocess.Popen(
            [python, "-c", OWN_TIMER], cwd=project, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def ms(self, proba: bool, seconds: float = 1.0) -> float:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps([proba, seconds]) + "\n")
        self.process.stdin.flush()
        return float(json.loads(self.process.stdout.readline()))

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


# --- processes ----------------------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command_for(
    name: str, project: Path, port: int, workers: int | str, python: str
) -> tuple[list[str], dict[str, str]]:
    env = {
        **os.environ,
        "BENCH_PROJECT": str(project),
        "PYTHONPATH": os.pathsep.join([str(SRC), str(project)]),
    }
    if name == "mlship":
        return [
            python,
            "-m",
            "mlship.serving",
            "--project",
            str(project),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ], env
    app = {"reference": "reference_app:app", "floor": "floor_app:app"}[name]
    command = [
        python,
        "-m",
        "uvicorn",
        app,
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    if int(workers) > 1:
        command += ["--workers", str(workers)]
    return command, env


def request(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 30
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} before it was ready")
        try:
            if request(port, "GET", "/health/ready", timeout=1)[0] == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"not ready after {timeout} s")


@contextmanager
def running(
    name: str,
    project: Path,
    workers: int | str,
    log: Path,
    python: str,
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[int, subprocess.Popen[bytes], float]]:
    port = free_port()
    command, env = command_for(name, project, port, workers, python)
    env = {**env, **(extra_env or {})}
    with log.open("ab") as sink:
        started = time.monotonic()
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=sink, cwd=project)
    try:
        wait_ready(port, process)
        yield port, process, time.monotonic() - started
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def worker_pids(process: subprocess.Popen[bytes]) -> list[int]:
    """The processes that serve: the children of a supervisor, or the process itself."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == process.pid:
                children.append(int(entry.name))
    # uvicorn --workers also starts a resource tracker; a serving worker has far more memory
    return [pid for pid in children if rss_mb(pid) > 40] or [process.pid]


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# --- load ---------------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: installing it with apt-get", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, stdout=subprocess.DEVNULL)
        found = shutil.which("wrk")
    if not found:
        sys.exit("benchmarks/serving.py needs wrk (Debian package 'wrk'): apt-get install wrk")
    return found


def wrk(port: int, clients: int, seconds: float, script: Path) -> dict[str, float]:
    threads = min(clients, 2)
    result = subprocess.run(
        [
            ensure_wrk(),
            "-t",
            str(threads),
            "-c",
            str(clients),
            "-d",
            f"{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    data = json.loads(line.removeprefix("RESULT "))
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    return data


def check_answers(
    port: int, pipeline: Any, rows: list[dict[str, float]], stop: threading.Event, outcome: dict[str, Any]
) -> None:
    """Under load, compare a sample of answers with the model's own (probabilities to 1e-9)."""
    import numpy as np
    import pandas as pd

    expected = pipeline.predict(pd.DataFrame(rows)).tolist()
    expected_proba = pipeline.predict_proba(pd.DataFrame(rows))
    checked = mismatched = 0
    index = 0
    while not stop.is_set() and checked < 200:
        status, body = request(port, "POST", "/predict", json.dumps(rows[index]).encode())
        answer = json.loads(body) if status == 200 else {}
        same = (
            status == 200
            and answer.get("predictions") == [expected[index]]
            and np.allclose(answer.get("probabilities", [[-1, -1]])[0], expected_proba[index], atol=1e-9)
        )
        checked += 1
        mismatched += not same
        index = (index + 1) % len(rows)
    outcome.update(checked=checked, mismatched=mismatched)


def batch_latency(port: int, rows: list[dict[str, float]]) -> float:
    body = json.dumps((rows * 10)[:1000]).encode()
    samples = []
    for _ in range(12):
        started = time.perf_counter()
        status, _ = request(port, "POST", "/predict", body)
        samples.append(time.perf_counter() - started)
        if status != 200:
            raise RuntimeError(f"batch of 1000 answered {status}")
    return statistics.median(samples[2:]) * 1000


# --- the run ------------------------------------------------------------------------------------------


def load(
    figures: Figures, port: int, clients: int, seconds: float, script: Path, label: str = ""
) -> dict[str, float]:
    """One wrk run; its figures are added to ``figures`` (``predictions_only`` runs only as p50)."""
    data = wrk(port, clients, seconds, script)
    figures.errors += int(data["errors"] + data["non2xx"])
    if label == "predictions_only":
        figures.p50_only_ms.append(data["p50_us"] / 1000)
    else:
        figures.rps.setdefault(clients, []).append(data["rps"])
        figures.p50_ms.setdefault(clients, []).append(data["p50_us"] / 1000)
        figures.p99_ms.setdefault(clients, []).append(data["p99_us"] / 1000)
    print(
        f"  {figures.name:>9} {clients:>2} clients{' ' + label if label else ''}: {data['rps']:8.0f} req/s  "
        f"p50 {data['p50_us'] / 1000:6.2f} ms  p99 {data['p99_us'] / 1000:6.2f} ms",
        file=sys.stderr,
    )
    return data


def container_engine() -> str | None:
    for engine in ("docker", "podman"):
        if shutil.which(engine):
            probe = subprocess.run([engine, "info"], capture_output=True, check=False)
            if probe.returncode == 0:
                return engine
    return None


def build_image(project: Path, base: str) -> str | None:
    """Build the benchmark project into an image with `mlship build`; its reference, or None."""
    if container_engine() is None:
        print("--build-image: no container engine answers; skipped", file=sys.stderr)
        return None
    tag = f"mlship-bench:{int(time.time())}"
    print(f"building {tag} with mlship build (base {base})", file=sys.stderr)
    result = subprocess.run(
        [sys.executable, "-m", "mlship", "build", str(project), "--tag", tag, "--base-image", base, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        print(f"mlship build failed ({result.returncode}): {result.stderr.strip()[-2000:]}", file=sys.stderr)
        return None
    return tag


def bench_image(
    image: str, figures: Figures, seconds: float, script: Path, rows: list[dict[str, float]]
) -> None:
    engine = container_engine()
    if engine is None:
        print("--image: no container engine answers; skipped", file=sys.stderr)
        return
    port = free_port()
    started = time.monotonic()
    container = subprocess.run(
        [engine, "run", "-d", "--rm", "--init", "-p", f"127.0.0.1:{port}:8080", image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if request(port, "GET", "/health/ready", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.01)
        figures.cold_start_s.append(time.monotonic() - started)
        for clients in (1, 16):
            wrk(port, clients, 1, script)  # warm-up
            load(figures, port, clients, seconds, script)
        figures.batch_1000_ms = batch_latency(port, rows)
    finally:
        subprocess.run([engine, "rm", "-f", container], capture_output=True, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per load run (default 3)")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (default 7)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="mlship's worker processes (default: mlship's default, serving.workers)",
    )
    parser.add_argument(
        "--reference-workers",
        type=int,
        default=None,
        help="worker processes of the reference and the floor (default: one per core)",
    )
    parser.add_argument("--image", help="also benchmark this image, built from this benchmark's project")
    parser.add_argument(
        "--build-image",
        metavar="BASE",
        help="build the project with `mlship build --base-image BASE`, bench it",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    parser.add_argument("--starts", type=int, default=5, help="cold starts per service (default 5)")
    args = parser.parse_args()
    sys.path.insert(0, str(SRC))
    from mlship.serving import ServiceSettings

    mlship_workers = args.workers or ServiceSettings.default().worker_count
    others = args.reference_workers or os.cpu_count() or 1
    workers = {"mlship": mlship_workers, "reference": others, "floor": others}
    ensure_wrk()
    root = Path(tempfile.mkdtemp(prefix="mlship-bench-"))
    try:
        return run(root / "project", workers, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def runtime_python() -> str:
    """A virtualenv like the image's (see the module docstring), made once and cached by its contents."""
    from importlib.metadata import version

    pins = [f"{name}=={version(name)}" for name in ("scikit-learn", "scipy", "pandas", "numpy", "joblib")]
    runtime = (SRC / "mlship" / "serving" / "requirements.txt").read_text().splitlines()
    wanted = sorted({*pins, "fastapi", *(r.strip() for r in runtime if r.strip() and not r.startswith("#"))})
    key = hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlship"
    venv = cache / f"bench-runtime-{key}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        print(f"making the image-like virtualenv {venv} (once)", file=sys.stderr)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *wanted], check=True)
        (venv / ".complete").touch()
    return str(python)


def model_alone(project: Path, python: str) -> tuple[float, float]:
    """A fresh process that only imports the model's stack, loads it and predicts once: seconds, RSS MB."""
    code = (
        "import resource, pandas, joblib; m = joblib.load('model/pipeline.joblib'); "
        "import json; m.predict(pandas.DataFrame([json.loads(open('rows.jsonl').readline())])); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    started = time.monotonic()
    result = subprocess.run([python, "-c", code], cwd=project, capture_output=True, text=True, check=True)
    return time.monotonic() - started, int(result.stdout.strip()) / 1024


def run(project: Path, workers: dict[str, int], args: argparse.Namespace) -> int:
    python = runtime_python()
    pipeline, rows = make_project(project, workers["mlship"])
    script = project / "load.lua"
    script.write_text(WRK_SCRIPT % {"rows": project / "rows.jsonl", "path": "/predict"})
    only_script = project / "load-predictions-only.lua"
    only_script.write_text(
        WRK_SCRIPT % {"rows": project / "rows.jsonl", "path": "/predict?predictions_only=true"}
    )
    log = project / "services.log"
    names = ("mlship", "reference", "floor")
    figures = {name: Figures(name) for name in names}
    print(f"workers {workers}; services run with {python}", file=sys.stderr)
    alone = Figures("model only")
    for _ in range(args.starts):  # cold starts, alternating
        seconds, rss = model_alone(project, python)
        alone.cold_start_s.append(seconds)
        alone.rss_mb.append(rss)
        for name in names:
            with running(name, project, workers[name], log, python) as (_, __, seconds):
                figures[name].cold_start_s.append(seconds)
    paired = Paired()
    answers: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:  # all three up at once; the load alternates between them
        up = {name: stack.enter_context(running(name, project, workers[name], log, python)) for name in names}
        ports = {name: port for name, (port, _, _) in up.items()}
        own = OwnTimer(project, python)
        stack.callback(own.close)
        for port in ports.values():
            wrk(port, 16, 1, script)  # warm-up
        for round_ in range(1, args.rounds + 1):
            print(f"round {round_}", file=sys.stderr)
            paired.own_ms.append(own.ms(proba=True))
            paired.own_predict_ms.append(own.ms(proba=False))
            one = {name: load(figures[name], ports[name], 1, args.duration, script) for name in names}
            only = load(figures["mlship"], ports["mlship"], 1, args.duration, only_script, "predictions_only")
            paired.excess_ms.append(one["mlship"]["p50_us"] / 1000 - paired.own_ms[-1])
            paired.excess_only_ms.append(only["p50_us"] / 1000 - paired.own_predict_ms[-1])
            stop = threading.Event()
            if round_ == 1:  # a sample of answers under load must be the model's own
                checker = threading.Thread(
                    target=check_answers, args=(ports["mlship"], pipeline, rows, stop, answers), daemon=True
                )
                checker.start()
            sixteen = {name: load(figures[name], ports[name], 16, args.duration, script) for name in names}
            stop.set()
            paired.ratio_16.append(sixteen["mlship"]["rps"] / sixteen["reference"]["rps"])
        for name, (port, process, _) in up.items():
            figures[name].rss_mb.append(max(rss_mb(pid) for pid in worker_pids(process)))
            if name != "floor":
                figures[name].batch_1000_ms = batch_latency(port, rows)
    image = args.image or (build_image(project, args.build_image) if args.build_image else None)
    if image:
        figures["image"] = Figures("image")
        bench_image(image, figures["image"], args.duration, script, rows)
    figures["model only"] = alone
    return report(figures, paired, answers, workers, args.json)


def report(
    figures: dict[str, Figures],
    paired: Paired,
    answers: dict[str, Any],
    workers: dict[str, int],
    as_json: bool,
) -> int:
    median = statistics.median
    reference = figures["reference"]
    print(
        f"\nserving benchmark — 20-feature LogisticRegression pipeline, {os.cpu_count()} cores, workers: "
        + ", ".join(f"{name} {count}" for name, count in workers.items())
    )
    header = (
        f"{'':>10} {'rps@1':>9} {'p50@1':>8} {'p99@1':>8} {'rps@16':>9} {'p50@16':>8} {'p99@16':>8} "
        f"{'batch1000':>10} {'cold':>7} {'rss/wkr':>8} {'×ref@16':>8}"
    )
    print(header)
    for name, fig in figures.items():
        if name == "model only":
            print(
                f"{name:>10} {'(a fresh process that imports, loads and predicts once)':>73} "
                f"{median(fig.cold_start_s):6.2f}s {max(fig.rss_mb):6.0f}MB"
            )
            continue
        ratio = fig.median(fig.rps, 16) / reference.median(reference.rps, 16)
        batch = f"{fig.batch_1000_ms:8.1f}ms" if fig.batch_1000_ms is not None else f"{'-':>10}"
        cold = f"{median(fig.cold_start_s):6.2f}s" if fig.cold_start_s else f"{'-':>7}"
        rss = f"{max(fig.rss_mb):6.0f}MB" if fig.rss_mb else f"{'-':>8}"
        print(
            f"{name:>10} {fig.median(fig.rps, 1):9.0f} {fig.median(fig.p50_ms, 1):6.2f}ms "
            f"{fig.median(fig.p99_ms, 1):6.2f}ms {fig.median(fig.rps, 16):9.0f} "
            f"{fig.median(fig.p50_ms, 16):6.2f}ms "
            f"{fig.median(fig.p99_ms, 16):6.2f}ms {batch} {cold} {rss} {ratio:7.1f}×"
        )
    mlship = figures["mlship"]
    alone = figures["model only"]

    def listed(values: list[float], unit: str = "") -> str:
        return ", ".join(f"{v:.2f}{unit}" for v in values)

    print(
        f"\nside by side, round by round ({len(paired.ratio_16)} rounds; medians):\n"
        f"  mlship ÷ reference req/s at 16 clients: {median(paired.ratio_16):.1f}× "
        f"({listed(paired.ratio_16, '×')})\n"
        f"  the model's own single-row time from a dict: predict + predict_proba "
        f"{median(paired.own_ms):.2f} ms, predict {median(paired.own_predict_ms):.2f} ms\n"
        f"  mlship p50@1 over the model's own predict + predict_proba (what /predict answers): "
        f"{median(paired.excess_ms):+.2f} ms ({listed(paired.excess_ms)})\n"
        f"  mlship p50@1 with ?predictions_only=true over the model's own predict: "
        f"{median(paired.excess_only_ms):+.2f} ms ({listed(paired.excess_only_ms)})\n"
        f"cold starts (s), mlship: {listed(mlship.cold_start_s)}; the model's own import + load + predict: "
        f"{listed(alone.cold_start_s)}"
    )
    print(
        f"answers checked under 16-client load: {answers.get('checked', 0)}, "
        f"differing from the model's own: {answers.get('mismatched', 'not checked')}"
    )
    checks = {
        "throughput@16 >= 5x reference": median(paired.ratio_16) >= 5,
        "p99@16 no worse than reference": mlship.median(mlship.p99_ms, 16)
        <= reference.median(reference.p99_ms, 16),
        "p50@1 within 0.5 ms of the model's own predict + predict_proba": median(paired.excess_ms) <= 0.5,
        "p50@1 (predictions_only) within 0.5 ms of the model's own predict": median(paired.excess_only_ms)
        <= 0.5,
        "cold start <= 1.5 s": median(mlship.cold_start_s) <= 1.5,
        "RSS <= 200 MB per worker": max(mlship.rss_mb) <= 200,
        "answers equal the model's": answers.get("checked", 0) > 0 and answers.get("mismatched") == 0,
        "no errors under load": mlship.errors == 0,
    }
    for check, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {check}")
    if as_json:
        print(
            json.dumps(
                {
                    "workers": workers,
                    "paired": asdict(paired),
                    "answers": answers,
                    "checks": checks,
                    "services": {name: asdict(fig) for name, fig in figures.items()},
                },
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
