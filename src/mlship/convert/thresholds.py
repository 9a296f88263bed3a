"""Which metrics a converted project is gated on, and thresholds just below what the model achieved."""

from __future__ import annotations

import math

from mlship.project.metric_names import LOWER_IS_BETTER, UNIT_INTERVAL_METRICS

MARGIN = 0.02  # thresholds sit 2 % (of the achieved value) on the safe side of it


def metrics_for(task: str, *, has_scores: bool) -> list[str]:
    """binary: f1 and roc_auc (accuracy when the model has no scores); multiclass: accuracy, f1_macro;
    regression: rmse, r2."""
    if task == "binary":
        return ["f1", "roc_auc" if has_scores else "accuracy"]
    if task == "multiclass":
        return ["accuracy", "f1_macro"]
    return ["rmse", "r2"]


def threshold(name: str, achieved: float) -> dict[str, float]:
    """{'min': …} just below a higher-is-better value (0.98×, rounded down to 4 decimals) or {'max': …} just
    above a lower-is-better one (1.02×, rounded up)."""
    margin = MARGIN * abs(achieved)
    if name in LOWER_IS_BETTER:
        bound = math.ceil((achieved + margin) * 10_000 + 1e-6) / 10_000
        return {"max": bound}
    bound = math.floor((achieved - margin) * 10_000 - 1e-6) / 10_000
    if name in UNIT_INTERVAL_METRICS:
        bound = min(max(bound, 0.0), 1.0)
    return {"min": bound}
