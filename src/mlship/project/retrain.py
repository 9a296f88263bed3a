"""The `retrain:` section of mlship.yaml: data guards, the held-out share, and the challenger's rules."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlship.project.metric_names import KNOWN_METRICS


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class Guards(_Model):
    """Checks on the new data before `mlship retrain` trains anything; a breach stops it (exit 11)."""

    min_rows: int = Field(200, ge=1, description="fewest rows the new data may have")
    max_null_increase: float = Field(
        0.05, ge=0, le=1, description="a column's share of empty values may exceed training's by this much"
    )
    time_column: str | None = Field(None, description="a timestamp column whose newest value must be recent")
    max_age_hours: float = Field(48, gt=0, description="how old the newest time_column value may be")
    min_class_share: float = Field(
        0.01, ge=0, le=1, description="each class of the target must make up at least this share"
    )
    max_psi: float = Field(
        0.25, gt=0, description="population stability index per column vs schema.json's training reference"
    )


class CompareRule(_Model):
    """MLflow-style rule for one metric: the challenger must beat the champion by these margins."""

    min_absolute_change: float = Field(0.0, ge=0)
    min_relative_change: float = Field(0.0, ge=0)
    greater_is_better: bool | None = None


class Retrain(_Model):
    """`mlship retrain`: data guards, the held-out share, and how the challenger must beat the champion."""

    guards: Guards = Field(default_factory=Guards)
    holdout: float = Field(0.25, gt=0, lt=1, description="share of the new rows held out to compare models")
    seed: int = 0
    compare: dict[str, CompareRule] = Field(
        default_factory=dict, description="per metric (default: every evaluation metric, must not be worse)"
    )
    blessing: str = "blessing.json"
    timeout_s: float = Field(3600, gt=0)

    @field_validator("compare")
    @classmethod
    def _known(cls, compare: dict[str, CompareRule]) -> dict[str, CompareRule]:
        for name in compare:
            if name not in KNOWN_METRICS:
                raise ValueError(f"unknown metric '{name}'; known: {', '.join(sorted(KNOWN_METRICS))}")
        return compare
