"""Metrics on predictions with scikit-learn's implementations, compared with the thresholds in mlship.yaml.

Works on predictions from any source (the local model process, a running service): give it the true
values, the predicted labels, and the class scores (predict_proba or decision_function) when there are any.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from mlship.errors import ConfigError, DataError, TestsFailed
from mlship.project.config import Evaluation, Threshold
from mlship.project.metric_names import LOWER_IS_BETTER, REGRESSION_METRICS

if TYPE_CHECKING:
    import numpy as np

SCORE_METRICS = frozenset({"roc_auc", "roc_auc_ovr", "log_loss"})
_IMPLIED = {
    "f1_macro": ("f1", "macro"),
    "f1_weighted": ("f1", "weighted"),
    "precision_macro": ("precision", "macro"),
    "recall_macro": ("recall", "macro"),
    "roc_auc_ovr": ("roc_auc", None),
}


class MetricResult(BaseModel):
    """One metric: its value, its thresholds, whether it met them, and how it was computed."""

    name: str
    value: float | None
    min: float | None = None
    max: float | None = None
    passed: bool
    detail: str | None = None

    @property
    def threshold(self) -> str:
        """The threshold as people write it: '≥ 0.9', '≤ 0.3', '0.1 – 0.9' or '–'."""
        if self.min is not None and self.max is not None:
            return f"{self.min:g} – {self.max:g}"
        if self.min is not None:
            return f"≥ {self.min:g}"
        return f"≤ {self.max:g}" if self.max is not None else "–"

    def explain(self) -> str:
        """Why it failed (or that it passed), with the value and the threshold."""
        shown = "undefined" if self.value is None else f"{self.value:.4g}"
        if self.passed:
            return f"{self.name} = {shown} meets {self.threshold}"
        if self.value is None:
            return f"{self.name} is undefined, threshold {self.threshold}"
        if self.min is not None and self.value < self.min:
            return f"{self.name} = {shown} is below the minimum {self.min:g}"
        return f"{self.name} = {shown} is above the maximum {self.max:g}"


def needs_scores(metrics: dict[str, Threshold]) -> bool:
    """Whether any configured metric needs class scores (predict_proba or decision_function)."""
    return any(name in SCORE_METRICS for name in metrics)


def resolve_classes(
    model_classes: Sequence[Any] | None,
    schema_classes: Sequence[Any] | None,
    y_true: np.ndarray[Any, Any],
    y_pred: np.ndarray[Any, Any],
) -> list[Any]:
    """The class order of the scores: the model's classes_, else schema.json's, else the labels seen."""
    import numpy as np

    if model_classes is not None:
        return [_plain(value) for value in model_classes]
    if schema_classes:
        return list(schema_classes)
    seen = np.unique(np.concatenate([np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)]))
    return sorted((_plain(value) for value in seen), key=lambda value: (str(type(value)), value))


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def resolve_positive(classes: list[Any], configured: str | int | None) -> tuple[Any, str]:
    """The positive class of a binary task: evaluation.positive_label, else 1 / True, else the last class."""
    if configured is not None:
        for value in classes:
            if value == configured or str(value) == str(configured):
                return value, f"positive label {value!r}"
        raise ConfigError(
            f"mlship.yaml evaluation.positive_label: {configured!r} is not one of the classes {classes}",
            hint="use one of the model's classes",
        )
    for candidate in (1, True):
        if any(value == candidate and type(value) is not float for value in classes):
            match = next(value for value in classes if value == candidate)
            return match, f"positive label {match!r}"
    return classes[-1], f"positive label {classes[-1]!r} (the last class; set evaluation.positive_label)"


def _softmax(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    import numpy as np

    shifted = np.exp(values - values.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def _probabilities(
    name: str, scores: np.ndarray[Any, Any] | None, kind: str | None, classes: list[Any]
) -> np.ndarray[Any, Any]:
    import numpy as np

    if scores is None:
        raise ConfigError(
            f"mlship.yaml evaluation.metrics.{name}: needs class scores, but Model has neither "
            "predict_proba nor decision_function",
            hint="add predict_proba(rows) to Model in solution.py, or remove this metric",
        )
    if scores.ndim == 1 and len(classes) == 2:
        positive = scores if kind == "proba" else 1 / (1 + np.exp(-scores))
        scores = np.column_stack([1 - positive, positive])
    if scores.ndim != 2 or scores.shape[1] != len(classes):
        raise TestsFailed(
            f"solution.py: {'predict_proba' if kind == 'proba' else 'decision_function'} returned "
            f"{scores.shape[1] if scores.ndim == 2 else 1} columns for {len(classes)} classes",
            hint="return one column per class, in the order of Model.classes_",
        )
    if kind == "decision":
        return _softmax(scores)
    totals = scores.sum(axis=1, keepdims=True)
    return scores / np.where(totals > 0, totals, 1.0)


def _binary_score(
    scores: np.ndarray[Any, Any] | None, kind: str | None, classes: list[Any], positive: Any
) -> np.ndarray[Any, Any]:
    if kind == "decision" and scores is not None and scores.ndim == 1:
        return scores if positive == classes[-1] else -scores
    return _probabilities("roc_auc", scores, kind, classes)[:, classes.index(positive)]


def _average(name: str, threshold: Threshold, task: str) -> tuple[str, str]:
    base, implied = _IMPLIED.get(name, (name, None))
    average = implied or threshold.average or ("binary" if task == "binary" else "macro")
    if average == "binary" and task != "binary":
        average = "macro"
    return base, average


def _classification(
    name: str,
    threshold: Threshold,
    task: str,
    y_true: Any,
    y_pred: Any,
    scores: np.ndarray[Any, Any] | None,
    kind: str | None,
    classes: list[Any],
    positive: Any,
) -> tuple[float, str | None]:
    from sklearn import metrics

    base, average = _average(name, threshold, task)
    if base == "accuracy":
        return float(metrics.accuracy_score(y_true, y_pred)), None
    if base == "balanced_accuracy":
        return float(metrics.balanced_accuracy_score(y_true, y_pred)), None
    if base in ("precision", "recall", "f1"):
        function = {
            "precision": metrics.precision_score,
            "recall": metrics.recall_score,
            "f1": metrics.f1_score,
        }[base]
        if average == "binary":
            value = function(y_true, y_pred, average="binary", pos_label=positive, zero_division=0)
            return float(value), None
        return float(
            function(y_true, y_pred, average=average, labels=classes, zero_division=0)
        ), f"{average} average"
    if base == "log_loss":
        return float(
            metrics.log_loss(y_true, _probabilities(name, scores, kind, classes), labels=classes)
        ), None
    if len(set(y_true.tolist())) < 2:
        raise ValueError("the target has only one class, so roc_auc is undefined")
    if task == "binary":
        return float(
            metrics.roc_auc_score(y_true == positive, _binary_score(scores, kind, classes, positive))
        ), None
    roc_average = threshold.average if threshold.average in ("macro", "weighted") else "macro"
    value = metrics.roc_auc_score(
        y_true,
        _probabilities(name, scores, kind, classes),
        multi_class="ovr",
        labels=classes,
        average=roc_average,
    )
    return float(value), f"one-vs-rest, {roc_average} average"


def _regression(name: str, y_true: Any, y_pred: Any) -> float:
    import numpy as np
    from sklearn import metrics

    try:
        truth, predicted = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    except (TypeError, ValueError) as error:
        raise TestsFailed(
            f"solution.py: predict returned values that are not numbers ({error})",
            hint="a regression model's predict must return one number per row",
        ) from error
    if name == "rmse":
        return math.sqrt(float(metrics.mean_squared_error(truth, predicted)))
    if name == "mae":
        return float(metrics.mean_absolute_error(truth, predicted))
    if name == "r2":
        return float(metrics.r2_score(truth, predicted))
    return float(metrics.mean_absolute_percentage_error(truth, predicted))


def _passes(value: float | None, threshold: Threshold) -> bool:
    if value is None:
        return False
    return (threshold.min is None or value >= threshold.min) and (
        threshold.max is None or value <= threshold.max
    )


def infer_gate_task(metrics: dict[str, Threshold], y_true: Any) -> str:
    """Regression when every metric is a regression metric; otherwise what the true values look like."""
    import pandas as pd

    from mlship.project.schema import infer_task

    if all(name in REGRESSION_METRICS for name in metrics):
        return "regression"
    task = infer_task(pd.Series(y_true))
    return "binary" if task == "regression" and len(set(pd.Series(y_true).tolist())) <= 2 else task


def evaluate_predictions(
    y_true: Any,
    y_pred: Any,
    scores: Any,
    config: Evaluation,
    *,
    task: str | None = None,
    classes: list[Any] | None = None,
    score_kind: str | None = "proba",
) -> list[MetricResult]:
    """Compute every metric in `config.metrics` and compare it with its min/max.

    `task` is binary, multiclass or regression (default: inferred from the metrics and `y_true`);
    `classes` is the column order of `scores` (default: the sorted labels seen). Raises ConfigError when
    a metric does not fit the task or the model, DataError when the data makes a metric undefined (e.g.
    one class only for roc_auc).
    """
    import numpy as np

    truth, predicted = np.asarray(y_true), np.asarray(y_pred)
    task = task or infer_gate_task(config.metrics, truth)
    score_array = None if scores is None else np.asarray(scores, dtype=float)
    results = []
    positive, positive_detail = None, None
    if task != "regression":
        classes = resolve_classes(classes, None, truth, predicted)
        if task == "binary":
            positive, positive_detail = resolve_positive(classes, config.positive_label)
    for name, threshold in config.metrics.items():
        regression_metric = name in REGRESSION_METRICS
        if regression_metric != (task == "regression"):
            kind = "a regression" if regression_metric else "a classification"
            raise ConfigError(
                f"mlship.yaml evaluation.metrics.{name}: {kind} metric, but the task is {task}",
                hint="use "
                + (
                    "rmse, mae, r2 or mape"
                    if task == "regression"
                    else "accuracy, precision, recall, f1, roc_auc or log_loss"
                ),
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                if regression_metric:
                    value, detail = _regression(name, truth, predicted), None
                else:
                    assert classes is not None
                    value, detail = _classification(
                        name, threshold, task, truth, predicted, score_array, score_kind, classes, positive
                    )
            except ValueError as error:
                raise DataError(
                    f"cannot compute {name} on the test data: {str(error).splitlines()[0]}",
                    hint="the test data needs every class (and for roc_auc both outcomes)",
                ) from error
        if task == "binary" and name not in ("accuracy", "balanced_accuracy", "log_loss"):
            detail = positive_detail if detail is None else f"{detail}, {positive_detail}"
        finite = None if math.isnan(value) or math.isinf(value) else value
        results.append(
            MetricResult(
                name=name,
                value=finite,
                min=threshold.min,
                max=threshold.max,
                passed=_passes(finite, threshold),
                detail=detail,
            )
        )
    return results


def lower_is_better(name: str) -> bool:
    """Whether a smaller value of the metric is better (log_loss, rmse, mae, mape)."""
    return name in LOWER_IS_BETTER
