"""Prometheus metrics: requests by route and status, latency, in-flight requests, batch sizes, predictions.

With several worker processes, ``PROMETHEUS_MULTIPROC_DIR`` is set by the supervisor before any worker
imports prometheus_client; every worker then writes its values to files there and ``/metrics`` from any
worker reports the sum over all of them.
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np  # noqa: TID253 - the serving runtime imports its own dependencies at module level
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)
MAX_CLASS_LABELS = 100
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: they double the output and nobody reads them


class Metrics:
    """The service's metrics, in a registry of their own (several apps may live in one test process)."""

    def __init__(
        self, name: str, version: str, task: str | None, value_edges: Sequence[float] | None
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        registry = self.registry
        self.requests = Counter(
            "mlship_requests",
            "HTTP requests answered, by route and status.",
            ["route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "mlship_request_duration_seconds",
            "Time to answer a request, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "mlship_predict_in_flight",
            "/predict requests being served now.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.batch_rows = Histogram(
            "mlship_batch_rows",
            "Rows per model call (micro-batches).",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.rejected = Counter(
            "mlship_rejected", "Requests refused before the model, by reason.", ["reason"], registry=registry
        )
        info = Gauge(
            "mlship_model_info",
            "The model this service serves (value 1).",
            ["name", "version"],
            registry=registry,
            multiprocess_mode="max",
        )
        info.labels(name, version).set(1)
        self.task = task
        self.predictions = Counter(
            "mlship_predictions",
            "Predictions made, by class (classification) or by "
            "quantile bucket of the training target (regression).",
            ["bucket" if task == "regression" else "class"],
            registry=registry,
        )
        self._edges = np.asarray(sorted(value_edges), dtype=np.float64) if value_edges else None
        self._bucket_names = _bucket_names(self._edges) if self._edges is not None else ["all"]
        self._request_children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._class_children: dict[Any, Any] = {}
        self.on_render: list[Callable[[], None]] = []  # e.g. the drift counter's flush

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        children = self._request_children.get((route, status))
        if children is None:
            children = (self.requests.labels(route, str(status)), self.latency.labels(route))
            self._request_children[(route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_batch(self, rows: int, predictions: Any) -> None:
        """Count one model call's rows and its predictions (called from the model thread)."""
        self.batch_rows.observe(rows)
        if self.task == "regression" or (self.task is None and _numeric_non_integer(predictions)):
            self._observe_values(predictions)
            return
        values = predictions.tolist() if isinstance(predictions, np.ndarray) else predictions
        try:
            tally = Tally(values)
        except TypeError:  # unhashable predictions (lists): count them as one kind
            tally = Tally({"other": len(values)})
        for value, count in tally.items():
            child = self._class_children.get(value)
            if child is None:
                label = str(value) if len(self._class_children) < MAX_CLASS_LABELS else "other"
                child = self.predictions.labels(label)
                self._class_children[value] = child
            child.inc(count)

    def _observe_values(self, predictions: Any) -> None:
        try:
            values = np.asarray(predictions, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            return
        if self._edges is None:
            self.predictions.labels("all").inc(len(values))
            return
        counts = np.bincount(
            np.searchsorted(self._edges, values, side="left"), minlength=len(self._bucket_names)
        )
        for name, count in zip(self._bucket_names, counts.tolist(), strict=True):
            if count:
                self.predictions.labels(name).inc(count)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type; summed over all workers in multiprocess mode."""
        for hook in self.on_render:
            hook()
        if self.multiprocess_dir:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _numeric_non_integer(predictions: Any) -> bool:
    return isinstance(predictions, np.ndarray) and predictions.dtype.kind == "f"


def _bucket_names(edges: np.ndarray) -> list[str]:
    bounds = [f"{edge:g}" for edge in edges.tolist()]
    names = [f"<={bounds[0]}"]
    names += [f"({low},{high}]" for low, high in zip(bounds, bounds[1:], strict=False)]
    names.append(f">{bounds[-1]}")
    return names
