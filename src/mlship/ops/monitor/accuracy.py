"""Live accuracy per version: the prediction log joined with late ground truth on the request id.

The log is the service's prediction records (JSON lines with ``"event": "prediction"``; other lines are
skipped, so a whole container log can be given). The labels are a CSV with ``request_id``, optionally
``row`` (the row's position in a batch request; 0 when absent) and one label column. Each version gets the
gate's metrics on its labelled rows, with 95 % bootstrap confidence intervals; the canary is worse than
live on a metric when it is worse by more than ``max_drop`` and the interval of the difference excludes 0.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from mlship.errors import DataError, UsageError
from mlship.project.metric_names import LOWER_IS_BETTER

if TYPE_CHECKING:
    import numpy as np

Task = Literal["binary", "multiclass", "regression"]
BOOTSTRAP = 400
REGRESSION_MIN_VALUES = 20


class Estimate(BaseModel):
    value: float | None
    low: float | None = None
    high: float | None = None


class VersionAccuracy(BaseModel):
    version: str
    role: Literal["live", "canary", "other"]
    requests: int
    labelled_rows: int
    metrics: dict[str, Estimate]


class Comparison(BaseModel):
    """Canary minus live, signed so that a negative difference is always worse."""

    metric: str
    live: float | None
    canary: float | None
    difference: Estimate
    worse: bool


class AccuracyResult(BaseModel):
    task: Task
    versions: list[VersionAccuracy]
    live: str | None
    canary: str | None
    comparisons: list[Comparison]
    canary_worse: bool
    unmatched_labels: int
    textfile: str | None = None


# --- reading -------------------------------------------------------------------------------------------


def prediction_records(path: Path) -> list[dict[str, Any]]:
    """The ``"event": "prediction"`` records of a log; every other line is skipped."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        raise UsageError(
            f"{path}: cannot be read: {error}", hint="pass the prediction log with --log"
        ) from None
    found = []
    for line in lines:
        if '"prediction"' not in line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("event") == "prediction":
            found.append(record)
    return found


def read_predictions(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """(request id, row) -> {version, prediction, scores, classes} from a prediction log."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for record in prediction_records(path):
        predictions = record.get("predictions")
        if not isinstance(predictions, list) or not isinstance(record.get("request_id"), str):
            continue
        scores = record.get("probabilities")
        for index, value in enumerate(predictions):
            rows[(record["request_id"], index)] = {
                "version": str(record.get("model_version") or "unknown"),
                "prediction": value,
                "scores": scores[index] if isinstance(scores, list) and index < len(scores) else None,
                "classes": record.get("classes"),
            }
    if not rows:
        raise DataError(
            f"{path}: no prediction records",
            hint='expected JSON lines with "event": "prediction" (the service writes them to stdout, '
            "or to MLSHIP_PREDICTION_LOG)",
        )
    return rows


def read_labels(path: Path, column: str | None) -> dict[tuple[str, int], Any]:
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype={"request_id": str})
    except (OSError, ValueError) as error:
        raise UsageError(f"{path}: cannot be read as CSV: {error}", hint="pass --labels LABELS.csv") from None
    if "request_id" not in frame.columns:
        raise DataError(f"{path}: no 'request_id' column", hint="label rows by the request id of the answer")
    others = [c for c in frame.columns if c not in ("request_id", "row", "ts")]
    if column is None:
        if len(others) != 1:
            raise UsageError(
                f"{path}: which column is the label? found {', '.join(map(str, others)) or 'none'}",
                hint="pass --label-column NAME",
            )
        column = str(others[0])
    if column not in frame.columns:
        raise DataError(
            f"{path}: no column '{column}'", hint=f"columns: {', '.join(map(str, frame.columns))}"
        )
    rows = frame["row"].astype(int) if "row" in frame.columns else [0] * len(frame)
    return {
        (str(rid), int(row)): value
        for rid, row, value in zip(frame["request_id"], rows, frame[column], strict=True)
        if not pd.isna(value)
    }


# --- metrics (numpy, so that the bootstrap is quick; the tests hold them to scikit-learn) ----------------


def _key(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _binary(y: np.ndarray, p: np.ndarray, s: np.ndarray | None) -> dict[str, float | None]:
    import numpy as np

    tp = float(np.sum(y & p))
    fp = float(np.sum(~y & p))
    fn = float(np.sum(y & ~p))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    found: dict[str, float | None] = {
        "accuracy": float(np.mean(y == p)),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }
    if s is not None:
        found["roc_auc"] = _auc(y, s)
    return found


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    import numpy as np

    positives = int(y.sum())
    negatives = len(y) - positives
    if not positives or not negatives:
        return None
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # average ranks for ties
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _multiclass(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    import numpy as np

    f1s = []
    for label in np.union1d(y, p):
        tp = np.sum((y == label) & (p == label))
        denominator = np.sum(y == label) + np.sum(p == label)
        f1s.append(2 * tp / denominator if denominator else 0.0)
    return {"accuracy": float(np.mean(y == p)), "f1_macro": float(np.mean(f1s))}


def _regression(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    import numpy as np

    error = p - y
    total = float(np.sum((y - y.mean()) ** 2))
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "r2": 1 - float(np.sum(error**2)) / total if total else None,
    }


Metrics = Callable[["np.ndarray"], dict[str, float | None]]  # row indices -> metric values


def _metric_function(task: Task, rows: list[dict[str, Any]], positive: str | None) -> Metrics:
    import numpy as np

    if task == "regression":
        y = np.array([float(r["label"]) for r in rows])
        p = np.array([float(r["prediction"]) for r in rows])
        return lambda i: _regression(y[i], p[i])
    y_text = np.array([_key(r["label"]) for r in rows])
    p_text = np.array([_key(r["prediction"]) for r in rows])
    if task == "multiclass":
        return lambda i: _multiclass(y_text[i], p_text[i])
    y_pos, p_pos = y_text == positive, p_text == positive
    scores = None
    if all(r["scores"] is not None and r["classes"] for r in rows):
        column = [_key(c) for c in rows[0]["classes"]].index(positive) if positive else -1
        scores = np.array([float(r["scores"][column]) for r in rows])
    return lambda i: _binary(y_pos[i], p_pos[i], None if scores is None else scores[i])


def _interval(
    metrics: Metrics, size: int, rng: np.random.Generator
) -> tuple[dict[str, float | None], dict[str, np.ndarray]]:
    import numpy as np

    point = metrics(np.arange(size))
    draws: dict[str, list[float]] = {name: [] for name in point}
    for _ in range(BOOTSTRAP):
        sample = metrics(rng.integers(0, size, size))
        for name in point:
            value = sample.get(name)
            draws[name].append(math.nan if value is None else value)
    return point, {name: np.array(values) for name, values in draws.items()}


def _estimate(value: float | None, draws: np.ndarray) -> Estimate:
    import numpy as np

    finite = draws[np.isfinite(draws)]
    if value is None or not len(finite):
        return Estimate(value=value)
    low, high = np.percentile(finite, [2.5, 97.5])
    return Estimate(value=round(value, 6), low=round(float(low), 6), high=round(float(high), 6))


# --- the whole ---------------------------------------------------------------------------------------------


def live_accuracy(
    log: Path,
    labels: Path,
    *,
    label_column: str | None = None,
    task: Task | None = None,
    live: str | None = None,
    canary: str | None = None,
    max_drop: float = 0.01,
    textfile: Path | None = None,
    seed: int = 0,
) -> AccuracyResult:
    """Join the labels to the logged predictions and measure each version (see the module docstring)."""
    import numpy as np

    predictions = read_predictions(log)
    truth = read_labels(labels, label_column)
    requests: dict[str, set[str]] = {}
    for (request_id, _), row in predictions.items():
        requests.setdefault(row["version"], set()).add(request_id)
    joined: dict[str, list[dict[str, Any]]] = {}
    for key, label in truth.items():
        if key in predictions:
            joined.setdefault(predictions[key]["version"], []).append({**predictions[key], "label": label})
    unmatched = sum(1 for key in truth if key not in predictions)
    if not joined:
        raise DataError(
            f"none of the {len(truth)} labels in {labels} matches a request id in {log}",
            hint="the labels' request_id must be the X-Request-ID of the answer",
        )
    everything = [row for rows in joined.values() for row in rows]
    task = task or _infer_task(everything)
    classes = next((r["classes"] for r in everything if r["classes"]), None)
    keys = sorted({_key(r["label"]) for r in everything} | {_key(r["prediction"]) for r in everything})
    positive = _key(classes[-1]) if classes else (keys[-1] if keys else None)
    by_size = sorted(requests, key=lambda v: (-len(requests[v]), v))
    live = live or by_size[0]
    canary = canary or next((v for v in by_size if v != live), None)
    rng = np.random.default_rng(seed)
    versions: list[VersionAccuracy] = []
    draws: dict[str, dict[str, np.ndarray]] = {}
    points: dict[str, dict[str, float | None]] = {}
    for version in by_size:
        rows = joined.get(version, [])
        metrics: dict[str, Estimate] = {}
        if rows:
            point, draws[version] = _interval(_metric_function(task, rows, positive), len(rows), rng)
            points[version] = point
            metrics = {name: _estimate(point[name], draws[version][name]) for name in point}
        role: Literal["live", "canary", "other"] = (
            "live" if version == live else "canary" if version == canary else "other"
        )
        versions.append(
            VersionAccuracy(
                version=version,
                role=role,
                requests=len(requests[version]),
                labelled_rows=len(rows),
                metrics=metrics,
            )
        )
    comparisons = _compare(points, draws, live, canary, max_drop)
    result = AccuracyResult(
        task=task,
        versions=versions,
        live=live,
        canary=canary,
        comparisons=comparisons,
        canary_worse=any(c.worse for c in comparisons),
        unmatched_labels=unmatched,
    )
    if textfile is not None:
        write_textfile(result, textfile)
        result.textfile = str(textfile)
    return result


def _infer_task(rows: list[dict[str, Any]]) -> Task:
    if any(r["scores"] is not None for r in rows):
        return "binary" if len(rows[0]["classes"] or []) <= 2 else "multiclass"
    values = {r["label"] for r in rows}
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    fractional = any(isinstance(r["prediction"], float) and not r["prediction"].is_integer() for r in rows)
    if numeric and (fractional or len(values) > REGRESSION_MIN_VALUES):
        return "regression"
    return "binary" if len(values | {r["prediction"] for r in rows}) <= 2 else "multiclass"


def _compare(
    points: dict[str, dict[str, float | None]],
    draws: dict[str, dict[str, np.ndarray]],
    live: str | None,
    canary: str | None,
    max_drop: float,
) -> list[Comparison]:
    if live not in points or canary not in points:
        return []
    found = []
    for name, live_value in points[live].items():
        canary_value = points[canary].get(name)
        sign = -1.0 if name in LOWER_IS_BETTER else 1.0
        if live_value is None or canary_value is None:
            found.append(
                Comparison(
                    metric=name,
                    live=live_value,
                    canary=canary_value,
                    difference=Estimate(value=None),
                    worse=False,
                )
            )
            continue
        difference = sign * (canary_value - live_value)
        spread = _estimate(difference, sign * (draws[canary][name] - draws[live][name]))
        worse = difference < -max_drop and spread.high is not None and spread.high < 0
        found.append(
            Comparison(
                metric=name, live=live_value, canary=canary_value, difference=spread, worse=bool(worse)
            )
        )
    return found


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def textfile_lines(result: AccuracyResult) -> Iterable[str]:
    yield "# HELP mlship_live_metric The model's metric on late labels, by version (mlship monitor accuracy)."
    yield "# TYPE mlship_live_metric gauge"
    for version in result.versions:
        for name, estimate in version.metrics.items():
            if estimate.value is not None:
                labels = f'version="{_escape(version.version)}",metric="{name}"'
                yield f"mlship_live_metric{{{labels}}} {estimate.value}"
    yield "# HELP mlship_live_labelled_rows Rows with a late label, by version."
    yield "# TYPE mlship_live_labelled_rows gauge"
    for version in result.versions:
        yield f'mlship_live_labelled_rows{{version="{_escape(version.version)}"}} {version.labelled_rows}'
    yield "# HELP mlship_live_version_info The role of each version in the comparison (value 1)."
    yield "# TYPE mlship_live_version_info gauge"
    for version in result.versions:
        yield f'mlship_live_version_info{{version="{_escape(version.version)}",role="{version.role}"}} 1'


def write_textfile(result: AccuracyResult, path: Path) -> None:
    """Write the Prometheus textfile atomically (node_exporter's textfile collector reads it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text("\n".join(textfile_lines(result)) + "\n", encoding="utf-8")
    partial.replace(path)
