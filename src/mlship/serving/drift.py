"""Drift counters: every accepted row counted into fixed bins per input column, beside the training shares.

The bins come from the training reference in schema.json, once at start:

- a number or integer column: quantile bins ``"0" … "k-1"``. Bin ``i`` holds the values above ``i`` of the
  edges (``numpy.searchsorted(edges, value, side="left")``). The edges and their exact training shares are
  ``observed.bins`` when schema.json has them, else the ``observed.quantiles`` (shares: the quantile levels'
  differences);
- a string or boolean column: one bin per value in ``observed.frequencies`` plus ``"other"``;
- ``"null"`` for a missing value, in every column that may be null.

A column without any reference (no quantiles, no frequencies) is not counted. The service only counts;
Prometheus computes the population stability index from ``mlship_feature_rows_total`` and
``mlship_feature_reference_share`` (the shipped recording rules), summed over workers and replicas.

``MLSHIP_DRIFT=off`` in the environment turns the counting off (the benchmark's baseline).

Counting costs the request one list append: the accepted rows are binned together, vectorised, at most
``FLUSH_S`` later (or once ``FLUSH_ROWS`` rows wait, or when /metrics is read).
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np  # noqa: TID253 - the serving runtime imports its own dependencies at module level
from prometheus_client import CollectorRegistry, Counter, Gauge

FLUSH_S = 0.5
FLUSH_ROWS = 20_000
NULL = "null"
OTHER = "other"


@dataclass
class FeatureBins:
    """One column's fixed bins: names, training shares and how a value finds its bin."""

    name: str
    position: int  # the column's index in the accepted rows
    numeric: bool
    labels: list[str]
    shares: list[float]
    edges: np.ndarray = field(default_factory=lambda: np.empty(0))
    categories: dict[Any, int] = field(default_factory=dict)  # value -> bin index (string/boolean)

    @property
    def null_bin(self) -> int | None:
        return len(self.labels) - 1 if self.labels[-1] == NULL else None

    @property
    def other_bin(self) -> int:
        return self.labels.index(OTHER)

    def count(self, values: Sequence[Any] | np.ndarray) -> np.ndarray:
        """How many of ``values`` fall in each bin (a vector as long as ``labels``)."""
        size = len(self.labels)
        if self.numeric:
            numbers = np.asarray(
                values if isinstance(values, np.ndarray) else [np.nan if v is None else v for v in values],
                dtype=np.float64,
            )
            index = np.searchsorted(self.edges, numbers, side="left")
            missing = np.isnan(numbers)
            if missing.any():
                index[missing] = self.null_bin if self.null_bin is not None else 0
            return np.bincount(index, minlength=size)[:size]
        other, null = self.other_bin, self.null_bin
        lookup = self.categories.get
        index = np.fromiter(
            ((null if null is not None else other) if v is None else lookup(v, other) for v in values),
            dtype=np.intp,
            count=len(values),
        )
        return np.bincount(index, minlength=size)[:size]


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _numeric_reference(observed: dict[str, Any]) -> tuple[list[float], list[float]] | None:
    """(edges, shares of the non-null values per bin) from ``bins`` or ``quantiles``; None without either."""
    bins = observed.get("bins")
    if isinstance(bins, dict):
        given = [_float(e) for e in bins.get("edges") or []]
        parts = [_float(s) for s in bins.get("shares") or []]
        if given and None not in given and None not in parts and len(parts) == len(given) + 1:
            return [e for e in given if e is not None], [s for s in parts if s is not None]
    quantiles = observed.get("quantiles")
    if not isinstance(quantiles, dict):
        return None
    levels: list[tuple[float, float]] = []
    for level, value in quantiles.items():
        number = _float(value)
        try:
            q = float(level)
        except ValueError:
            continue
        if number is not None and 0.0 < q < 1.0:
            levels.append((q, number))
    if not levels:
        return None
    levels.sort()
    edges: list[float] = []
    tops: list[float] = []  # the highest level at each distinct edge: P(X <= edge) >= that level
    for q, value in levels:
        if edges and value <= edges[-1]:
            tops[-1] = q
        else:
            edges.append(value)
            tops.append(q)
    bounds = [0.0, *tops, 1.0]
    return edges, [high - low for low, high in zip(bounds, bounds[1:], strict=False)]


def _categorical_reference(observed: dict[str, Any]) -> tuple[list[str], list[float]] | None:
    frequencies = observed.get("frequencies")
    if not isinstance(frequencies, dict) or not frequencies:
        return None
    labels, shares = [], []
    for value, share in frequencies.items():
        number = _float(share)
        if number is None or str(value) in (OTHER, NULL):
            continue
        labels.append(str(value))
        shares.append(max(number, 0.0))
    labels.append(OTHER)
    shares.append(max(0.0, 1.0 - sum(shares)))
    return labels, shares


def feature_bins(schema: dict[str, Any]) -> list[FeatureBins]:
    """The fixed bins of every column of schema.json that has a training reference."""
    found: list[FeatureBins] = []
    for position, column in enumerate(schema.get("columns") or []):
        if not isinstance(column, dict) or not isinstance(column.get("name"), str):
            continue
        raw = column.get("observed")
        observed: dict[str, Any] = raw if isinstance(raw, dict) else {}
        kind = column.get("type")
        null_fraction = _float(observed.get("null_fraction")) or 0.0
        nullable = bool(column.get("nullable")) or null_fraction > 0
        numeric = kind in ("number", "integer")
        edges: list[float] = []
        if numeric:
            found_numeric = _numeric_reference(observed)
            if found_numeric is None:
                continue
            edges, shares = found_numeric
            labels = [str(i) for i in range(len(shares))]
        else:
            found_categorical = _categorical_reference(observed)
            if found_categorical is None:
                continue
            labels, shares = found_categorical
        total = sum(shares)
        shares = [s / total * (1.0 - null_fraction) if total > 0 else 0.0 for s in shares]
        if nullable:
            labels.append(NULL)
            shares.append(null_fraction)
        bins = FeatureBins(column["name"], position, numeric, labels, shares)
        if numeric:
            bins.edges = np.asarray(edges, dtype=np.float64)
        else:
            bins.categories = _categories(labels, kind)
        found.append(bins)
    return found


def _categories(labels: list[str], kind: Any) -> dict[Any, int]:
    named = {label: i for i, label in enumerate(labels) if label not in (OTHER, NULL)}
    if kind == "boolean":
        return {value: named[key] for value, key in ((True, "true"), (False, "false")) if key in named}
    return named


class DriftCounter:
    """Counts accepted rows per feature bin into ``mlship_feature_rows_total``, batched on the event loop."""

    def __init__(self, schema: dict[str, Any], registry: CollectorRegistry) -> None:
        self.features = feature_bins(schema) if os.environ.get("MLSHIP_DRIFT", "on") != "off" else []
        self.rows = Counter(
            "mlship_feature_rows",
            "Accepted input rows, by feature and fixed bin of the training reference (drift).",
            ["feature", "bin"],
            registry=registry,
        )
        reference = Gauge(
            "mlship_feature_reference_share",
            "The training share of each feature bin (from schema.json); a feature's shares sum to 1.",
            ["feature", "bin"],
            registry=registry,
            multiprocess_mode="max",
        )
        self._children: list[list[Any]] = []
        for feature in self.features:
            children = []
            for label, share in zip(feature.labels, feature.shares, strict=True):
                reference.labels(feature.name, label).set(share)
                children.append(self.rows.labels(feature.name, label))  # every bin exported from 0 on
            self._children.append(children)
        self._pending: list[Any] = []
        self._pending_rows = 0
        self._timer: asyncio.TimerHandle | None = None

    def observe(self, rows: Any) -> None:
        """Queue one request's accepted rows (a float array, or a list of tuples in column order)."""
        if not self.features:
            return
        self._pending.append(rows)
        self._pending_rows += len(rows)
        if self._pending_rows >= FLUSH_ROWS:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(FLUSH_S, self.flush)
            except RuntimeError:  # no loop (a direct call): count now
                self.flush()

    def flush(self) -> None:
        """Bin every queued row and add the counts to the counters."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending, self._pending_rows = self._pending, [], 0
        if not pending:
            return
        arrays = [part for part in pending if isinstance(part, np.ndarray)]
        tuples = [row for part in pending if not isinstance(part, np.ndarray) for row in part]
        block = (arrays[0] if len(arrays) == 1 else np.concatenate(arrays)) if arrays else None
        columns = list(zip(*tuples, strict=True)) if tuples else []
        for feature, children in zip(self.features, self._children, strict=True):
            counts = np.zeros(len(feature.labels), dtype=np.int64)
            if block is not None:
                counts += feature.count(block[:, feature.position])
            if columns:
                counts += feature.count(columns[feature.position])
            for child, count in zip(children, counts.tolist(), strict=True):
                if count:
                    child.inc(count)
