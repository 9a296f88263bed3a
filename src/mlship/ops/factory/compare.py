"""Challenger against champion, MLflow-style: per metric, is the challenger better by the required margin?

For a metric where greater is better, the challenger passes when

    gain ≥ min_absolute_change  and  gain / |champion| ≥ min_relative_change   (gain = challenger − champion)

(mirrored when lower is better). With the defaults (0, 0) the challenger passes when it is not worse. The
metrics compared are those of retrain.compare, else every evaluation metric.
"""

from __future__ import annotations

from pydantic import BaseModel

from mlship.project.config import ProjectConfig
from mlship.project.metric_names import LOWER_IS_BETTER
from mlship.project.retrain import CompareRule


class MetricComparison(BaseModel):
    """One metric on the same held-out rows, for both models, and the rule's verdict."""

    metric: str
    challenger: float | None
    champion: float | None
    change: float | None
    relative_change: float | None
    min_absolute_change: float
    min_relative_change: float
    greater_is_better: bool
    passed: bool
    detail: str


def rules(config: ProjectConfig) -> dict[str, CompareRule]:
    """retrain.compare, or one default rule (not worse) per evaluation metric."""
    return dict(config.retrain.compare) or {name: CompareRule() for name in config.evaluation.metrics}


def compare_metric(
    name: str, rule: CompareRule, challenger: float | None, champion: float | None
) -> MetricComparison:
    greater = rule.greater_is_better if rule.greater_is_better is not None else name not in LOWER_IS_BETTER
    base = {
        "metric": name,
        "challenger": challenger,
        "champion": champion,
        "min_absolute_change": rule.min_absolute_change,
        "min_relative_change": rule.min_relative_change,
        "greater_is_better": greater,
    }
    if challenger is None:
        return MetricComparison(
            **base, change=None, relative_change=None, passed=False, detail="undefined for the challenger"
        )
    if champion is None:
        return MetricComparison(
            **base,
            change=None,
            relative_change=None,
            passed=True,
            detail="no champion value: nothing to beat",
        )
    change = challenger - champion
    gain = change if greater else -change
    relative = gain / abs(champion) if champion else (0.0 if gain == 0 else float("inf"))
    absolute_ok = gain >= rule.min_absolute_change - 1e-12
    relative_ok = relative >= rule.min_relative_change - 1e-12
    better = "higher" if greater else "lower"
    detail = (
        f"{challenger:.4f} vs champion {champion:.4f} ({better} is better; needs ≥ "
        f"{rule.min_absolute_change:g} absolute and ≥ {rule.min_relative_change:.1%} relative gain)"
    )
    return MetricComparison(
        **base,
        change=change,
        relative_change=relative,
        passed=absolute_ok and relative_ok,
        detail=detail,
    )


def compare(
    config: ProjectConfig, challenger: dict[str, float | None], champion: dict[str, float | None] | None
) -> list[MetricComparison]:
    """Every compared metric; with no champion (nothing live yet) each passes on the challenger alone."""
    return [
        compare_metric(name, rule, challenger.get(name), None if champion is None else champion.get(name))
        for name, rule in rules(config).items()
    ]
