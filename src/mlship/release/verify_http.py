"""Verify a built image: run it, send the whole test data over HTTP, and require the same metrics as locally.

This is what makes a release trustworthy: the image serves exactly what the gate tested. The service is
scored by the same `run_gate` as the local model, through `HttpPredictor`.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from mlship.errors import BuildFailed, TestsFailed
from mlship.gate.metrics import MetricResult
from mlship.gate.sandbox import Predictions, ScoreKind
from mlship.project.config import Project

if TYPE_CHECKING:
    import httpx
    import pandas as pd

    from mlship.gate.evaluate import GateResult

BATCH_ROWS = 500
LATENCY_SAMPLES = 100
TOLERANCE = 1e-9


class VerifyResult(BaseModel):
    """The running image against the local gate: same metrics, and how fast it answered."""

    image: str
    rows: int
    ready_s: float
    metrics: dict[str, float]
    p50_ms: float
    p99_ms: float


class HttpPredictor:
    """A running service as a `Predictor`: batches of rows to POST /predict, answers back as arrays."""

    def __init__(self, client: httpx.Client, batch_rows: int = BATCH_ROWS) -> None:
        self.client = client
        self.batch_rows = batch_rows
        self._classes: list[Any] | None = None

    @property
    def classes(self) -> list[Any] | None:
        return self._classes

    def post(self, body: bytes) -> dict[str, Any]:
        response = self.client.post("/predict", content=body, headers={"Content-Type": "application/json"})
        if response.status_code != 200:
            raise TestsFailed(
                f"the image answered HTTP {response.status_code} on /predict: {response.text[:300]}",
                hint="the image refused rows the local model accepted; see the message above",
            )
        answer: dict[str, Any] = response.json()
        return answer

    def predict(self, rows: pd.DataFrame, *, scores: bool) -> Predictions:
        import numpy as np

        labels: list[Any] = []
        probabilities: list[Any] = []
        kind: ScoreKind | None = None
        for start in range(0, len(rows), self.batch_rows):
            batch = rows.iloc[start : start + self.batch_rows]
            answer = self.post(batch.to_json(orient="records", double_precision=15).encode())
            labels.extend(answer["predictions"])
            self._classes = answer.get("classes", self._classes)
            if "probabilities" in answer:
                probabilities.extend(answer["probabilities"])
                kind = "proba"
            elif "scores" in answer:
                probabilities.extend(answer["scores"])
                kind = "decision"
        return Predictions(
            labels=np.asarray(labels),
            scores=np.asarray(probabilities, dtype=float) if scores and probabilities else None,
            score_kind=kind if scores and probabilities else None,
        )


def measured(metrics: list[MetricResult]) -> dict[str, float]:
    """Metric name → value, for the metrics that have one."""
    return {metric.name: metric.value for metric in metrics if metric.value is not None}


def _latency(predictor: HttpPredictor, example: bytes) -> tuple[float, float]:
    samples = []
    for _ in range(LATENCY_SAMPLES):
        started = time.perf_counter()
        predictor.post(example)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def verify_image(project: Project, ref: str, local: GateResult) -> VerifyResult:
    """Run `ref`, wait for readiness, score the test data through it, and compare with the local gate."""
    import httpx

    from mlship.adapters import engine as image
    from mlship.console import console
    from mlship.gate.evaluate import run_gate

    with image.run(ref, port=8080) as container:
        ready_s = image.wait_ready(container, timeout=120)
        console.print(f"  [green]✓[/] {ref} ready in {ready_s:.1f} s at {container.url}")
        with httpx.Client(base_url=str(container.url), timeout=60) as client:
            predictor = HttpPredictor(client)
            remote = run_gate(project, predictor)
            first_row = _first_row(project)
            p50, p99 = _latency(predictor, first_row)
    local_metrics, remote_metrics = measured(local.metrics), measured(remote.metrics)
    for name, value in local_metrics.items():
        if not abs(remote_metrics.get(name, float("nan")) - value) <= TOLERANCE or remote.rows != local.rows:
            raise BuildFailed(
                f"the image does not serve what was tested: {name} is {remote_metrics.get(name)} over HTTP "
                f"but {value} locally ({remote.rows} vs {local.rows} rows); nothing was pushed",
                hint="check that requirements.in pins the library versions the model was trained with",
            )
    console.print(
        f"  [green]✓[/] {remote.rows} rows over HTTP give the same metrics as locally; "
        f"single-row latency p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )
    return VerifyResult(
        image=ref,
        rows=remote.rows,
        ready_s=ready_s,
        metrics=remote_metrics,
        p50_ms=round(p50, 3),
        p99_ms=round(p99, 3),
    )


def _first_row(project: Project) -> bytes:
    import json

    from mlship.project.schema import load_schema

    schema = load_schema(project.schema_path)
    return json.dumps(schema.get("example") or {}).encode()
