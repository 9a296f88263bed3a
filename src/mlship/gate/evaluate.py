"""The release gate: stream the test data through the model, validate it against schema.json, score it.

    open the data (local or downloaded) → read chunk → validate against schema.json → predict (child process)
    → keep y_true, predictions, scores → next chunk … → metrics vs thresholds → GateResult

Only the true values, predictions and scores are kept: the parent holds at most one chunk of inputs between
reads (two while the reader parses the next one), the model process one, whatever the number of rows.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from mlship.errors import DataError
from mlship.gate.metrics import (
    MetricResult,
    evaluate_predictions,
    infer_gate_task,
    needs_scores,
    resolve_classes,
)
from mlship.gate.sandbox import ModelProcess, Predictions, Predictor
from mlship.project.config import Project
from mlship.project.data import DataFile, is_url, open_data, read_chunks
from mlship.project.drift import ShiftCounter
from mlship.project.schema import load_schema
from mlship.project.validation import ValidationReport, validate_frame

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

MAX_LISTED_PROBLEMS = 5

__all__ = ["GateResult", "MetricResult", "evaluate_predictions", "run_gate"]


class GateResult(BaseModel):
    """The gate's verdict: every metric against its threshold, over `rows` rows of the data with this hash."""

    metrics: list[MetricResult]
    passed: bool
    rows: int
    data: str
    data_sha256: str
    task: str
    warnings: list[str]
    seconds: float
    model_max_rss_kb: int | None = None
    model: str = "Model"  # the class of solution.py that was scored (fallback.model for the spare)

    @property
    def failed(self) -> list[MetricResult]:
        return [metric for metric in self.metrics if not metric.passed]


class _Collected:
    """y_true, predictions and scores of every chunk; never the inputs."""

    def __init__(self) -> None:
        self.truth: list[np.ndarray[Any, Any]] = []
        self.labels: list[np.ndarray[Any, Any]] = []
        self.scores: list[np.ndarray[Any, Any]] = []
        self.score_kind: str | None = None

    def add(self, truth: np.ndarray[Any, Any], predictions: Predictions) -> None:
        self.truth.append(truth)
        self.labels.append(predictions.labels)
        if predictions.scores is not None:
            self.scores.append(predictions.scores)
            self.score_kind = predictions.score_kind

    def arrays(self) -> tuple[Any, Any, Any]:
        """Join the per-chunk arrays, letting go of each list as soon as it is joined."""
        import numpy as np

        complete = bool(self.scores) and len(self.scores) == len(self.labels)
        joined = []
        for parts in (self.truth, self.labels, self.scores):
            joined.append(np.concatenate(parts) if parts else None)
            parts.clear()
        truth, labels, scores = joined
        return truth, labels, scores if complete else None


def _shift_warnings(shift: ShiftCounter, limit: float | None) -> list[str]:
    """One warning per test-data column whose distribution lies beyond evaluation.max_psi from training's."""
    if limit is None:
        return []
    return [
        f"test data: column '{name}' differs from the training data (PSI {value:.2f} > evaluation.max_psi "
        f"{limit}): the metrics describe data unlike what the model learned from"
        for name, value in sorted(shift.psi().items())
        if value > limit
    ]


def _text_columns(schema: dict[str, Any], target: str) -> list[str]:
    columns = [column["name"] for column in schema["columns"] if column["type"] == "string"]
    target_info = schema.get("target") or {}
    if target_info.get("name") == target and target_info.get("type") == "string":
        columns.append(target)
    return columns


def _check_target(chunk: pd.DataFrame, target: str, data: DataFile, offset: int) -> None:
    if target not in chunk.columns:
        listed = ", ".join(str(name) for name in list(chunk.columns)[:12])
        raise DataError(
            f"test data {data.source} has no target column '{target}' (evaluation.target in "
            f"mlship.yaml); its columns: {listed}",
            hint="add the true values as that column, or fix evaluation.target",
        )
    nulls = chunk[target].isna().to_numpy()
    if nulls.any():
        first = int(nulls.argmax()) + offset + 1
        raise DataError(
            f"test data {data.source}: the target column '{target}' is empty in {int(nulls.sum())} "
            f"rows of this chunk (first at row {first})",
            hint="every test row needs its true value",
        )


def _hard_problems(report: ValidationReport, data: DataFile, schema_path: str) -> DataError:
    listed = "; ".join(problem.message for problem in report.hard[:MAX_LISTED_PROBLEMS])
    more = len(report.hard) - MAX_LISTED_PROBLEMS
    suffix = f"; and {more} more" if more > 0 else ""
    return DataError(
        f"test data {data.source} does not match {schema_path}: {listed}{suffix}",
        hint="fix the test data, or regenerate the schema if the model's inputs changed",
    )


def _task(schema: dict[str, Any], metrics: dict[str, Any], truth: np.ndarray[Any, Any]) -> str:
    return str(schema["task"]) if schema.get("task") else infer_gate_task(metrics, truth)


def _shown(project: Project) -> str:
    data = project.config.evaluation.data
    return data if is_url(data) else str(Path(project.data_location()).relative_to(project.root.resolve()))


def run_gate(project: Project, predictor: Predictor | None = None, *, spare: bool = False) -> GateResult:
    """Validate the test data against schema.json, predict it in chunks, and compare metrics with thresholds.

    `predictor` defaults to the project's own Model in a child process; the deploy step passes a running
    service instead; with `spare`, the fallback model (fallback.model) is scored against fallback.metrics.
    Raises DataError (data missing, empty, unreadable or not matching the schema),
    TestsFailed (the model crashed, exited or hung) and ConfigError (a metric the model cannot support).
    """
    started = time.perf_counter()
    evaluation = project.config.evaluation
    model_class = "Model"
    fallback = project.config.fallback
    if spare and fallback is not None:
        evaluation = evaluation.model_copy(update={"metrics": fallback.metrics})
        model_class = fallback.model
    schema = load_schema(project.schema_path)
    schema_name = project.config.schema_file
    columns = [column["name"] for column in schema["columns"]]
    want_scores = needs_scores(evaluation.metrics)
    collected = _Collected()
    report = ValidationReport()
    shift = ShiftCounter(schema)
    rows = 0
    with ExitStack() as stack:
        data = stack.enter_context(open_data(project.data_location(), _shown(project)))
        model = predictor
        for chunk in read_chunks(data, evaluation.chunk_rows, _text_columns(schema, evaluation.target)):
            _check_target(chunk, evaluation.target, data, rows)
            truth = chunk.pop(evaluation.target).to_numpy()
            report = report.merge(validate_frame(chunk, schema, row_offset=rows))
            shift.add(chunk)
            rows += len(chunk)
            if report.ok:
                if model is None:
                    model = stack.enter_context(
                        ModelProcess(
                            project.solution_path,
                            project.artifacts_path,
                            timeout_s=evaluation.timeout_s,
                            cwd=project.root,
                            model_class=model_class,
                        )
                    )
                inputs = chunk if list(chunk.columns) == columns else chunk[columns]
                del chunk
                collected.add(truth, model.predict(inputs, scores=want_scores))
                del inputs
            else:
                del chunk  # keep reading only to count every problem
        if not report.ok:
            raise _hard_problems(report, data, schema_name)
        truth_all, labels, scores = collected.arrays()
        task = _task(schema, evaluation.metrics, truth_all)
        classes = None
        if task != "regression":
            target = schema.get("target") or {}
            classes = resolve_classes(
                model.classes if model is not None else None, target.get("classes"), truth_all, labels
            )
        metrics = evaluate_predictions(
            truth_all, labels, scores, evaluation, task=task, classes=classes, score_kind=collected.score_kind
        )
        digest = data.sha256
    stats = model.stats.max_rss_kb if isinstance(model, ModelProcess) else None
    warnings = [problem.message for problem in report.soft] + _shift_warnings(shift, evaluation.max_psi)
    return GateResult(
        metrics=metrics,
        passed=all(metric.passed for metric in metrics),
        rows=rows,
        data=data.source,
        data_sha256=digest,
        task=task,
        warnings=warnings,
        seconds=round(time.perf_counter() - started, 3),
        model_max_rss_kb=stats,
        model=model_class,
    )
