"""Validate a DataFrame against schema.json: every problem named by column and rows, as a report the gate
shows (types, nulls, bounds, categories)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, computed_field

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
from mlship.project.schema import json_value

ProblemKind = Literal[
    "missing_column", "wrong_type", "null", "extra_column", "out_of_range", "unseen_category"
]


class Problem(BaseModel):
    """One thing wrong with a column, counted over rows (first_row is 1-based, the first data row is 1)."""

    column: str
    kind: ProblemKind
    rows: int
    first_row: int | None = None
    detail: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def message(self) -> str:
        where = f" (first at row {self.first_row})" if self.first_row is not None else ""
        count = f" in {self.rows} row{'s' if self.rows != 1 else ''}" if self.rows else ""
        return f"column '{self.column}': {self.detail}{count}{where}"

    @classmethod
    def over(
        cls, column: str, kind: ProblemKind, mask: np.ndarray[Any, Any], offset: int, detail: str
    ) -> Problem:
        """The problem in the rows `mask` selects, counted, with the first of them (offset by the chunk)."""
        return cls(
            column=column, kind=kind, rows=int(mask.sum()), first_row=_first(mask, offset), detail=detail
        )


class ValidationReport(BaseModel):
    """Hard problems stop the gate (and make the service answer 422); soft ones are warnings."""

    hard: list[Problem] = []
    soft: list[Problem] = []

    @property
    def ok(self) -> bool:
        return not self.hard

    def merge(self, other: ValidationReport) -> ValidationReport:
        """Combine the reports of two chunks of the same table: counts add up, the first row is kept."""
        return ValidationReport(hard=_merge(self.hard, other.hard), soft=_merge(self.soft, other.soft))


def _merge(left: list[Problem], right: list[Problem]) -> list[Problem]:
    merged: dict[tuple[str, str], Problem] = {(p.column, p.kind): p for p in left}
    for problem in right:
        key = (problem.column, problem.kind)
        if key not in merged:
            merged[key] = problem
            continue
        known = merged[key]
        firsts = [row for row in (known.first_row, problem.first_row) if row is not None]
        merged[key] = known.model_copy(
            update={"rows": known.rows + problem.rows, "first_row": min(firsts) if firsts else None}
        )
    return list(merged.values())


def _first(mask: np.ndarray[Any, Any], offset: int) -> int | None:
    import numpy as np

    positions = np.flatnonzero(mask)
    return int(positions[0]) + offset + 1 if len(positions) else None


def _show(values: Any, limit: int = 3) -> str:
    shown = [repr(json_value(v)) for v in list(values)[:limit]]
    return ", ".join(shown) + (", …" if len(values) > limit else "")


def _check_numbers(
    name: str, column: dict[str, Any], series: pd.Series, offset: int, report: ValidationReport
) -> None:
    import numpy as np
    import pandas as pd
    from pandas.api import types

    kind = column["type"]
    present = series.notna().to_numpy()
    if types.is_bool_dtype(series.dtype):
        numbers = pd.Series(np.full(len(series), np.nan))
        bad = present
    elif types.is_numeric_dtype(series.dtype):
        numbers = series.astype(float)
        bad = np.zeros(len(series), dtype=bool)
    else:
        numbers = pd.to_numeric(series.where(~series.map(lambda v: isinstance(v, bool))), errors="coerce")
        bad = present & numbers.isna().to_numpy()
    if bad.any():
        samples = series[bad].unique()
        report.hard.append(
            Problem.over(
                name,
                "wrong_type",
                bad,
                offset,
                f"expected {'an integer' if kind == 'integer' else 'a number'}, got {_show(samples)}",
            )
        )
    values = numbers.to_numpy(dtype=float)
    valid = present & ~bad
    if kind == "integer":
        fractional = valid & np.isfinite(values) & (values != np.floor(values))
        if fractional.any():
            report.hard.append(
                Problem.over(
                    name,
                    "wrong_type",
                    fractional,
                    offset,
                    f"expected an integer, got {_show(series[fractional].unique())}",
                )
            )
            valid &= ~fractional
    low, high = column.get("minimum"), column.get("maximum")
    outside = np.zeros(len(series), dtype=bool)
    with np.errstate(invalid="ignore"):
        if low is not None:
            outside |= valid & (values < low)
        if high is not None:
            outside |= valid & (values > high)
    if outside.any():
        report.soft.append(
            Problem.over(
                name,
                "out_of_range",
                outside,
                offset,
                f"values outside the allowed range [{low}, {high}] (training range ± its width)",
            )
        )


def _check_boolean(name: str, series: pd.Series, offset: int, report: ValidationReport) -> None:
    from pandas.api import types

    if types.is_bool_dtype(series.dtype):
        return
    accepted = {True, False, "true", "false", "True", "False", "TRUE", "FALSE"}
    bad = (series.notna() & ~series.map(lambda v: _hashable(v) and v in accepted).astype(bool)).to_numpy()
    if bad.any():
        report.hard.append(
            Problem.over(
                name, "wrong_type", bad, offset, f"expected true/false, got {_show(series[bad].unique())}"
            )
        )


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _check_string(
    name: str, column: dict[str, Any], series: pd.Series, offset: int, report: ValidationReport
) -> None:
    import numpy as np
    from pandas.api import types

    present = series.notna().to_numpy()
    if types.is_string_dtype(series.dtype) and not types.is_object_dtype(series.dtype):
        bad = np.zeros(len(series), dtype=bool)  # a text dtype holds only text
    else:
        bad = present & ~series.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    if bad.any():
        report.hard.append(
            Problem.over(name, "wrong_type", bad, offset, f"expected text, got {_show(series[bad].unique())}")
        )
    enum = column.get("enum")
    if enum is None:
        return
    unseen = present & ~bad & ~series.isin(enum).to_numpy()
    if unseen.any():
        report.soft.append(
            Problem.over(
                name,
                "unseen_category",
                unseen,
                offset,
                f"categories not seen in training: {_show(series[unseen].unique())}",
            )
        )


def validate_frame(frame: pd.DataFrame, schema: dict[str, Any], *, row_offset: int = 0) -> ValidationReport:
    """Check a table against the schema, column by column (vectorised).

    Hard: a missing column, a value of the wrong type, a null in a column that had none in training.
    Soft: an unexpected extra column (the target column is expected), a value outside the enforced bounds,
    a category not seen in training. `row_offset` numbers the rows of a chunk within its whole table.
    """
    report = ValidationReport()
    frame = frame.set_axis([str(name) for name in frame.columns], axis=1)
    expected = {column["name"] for column in schema["columns"]}
    target = (schema.get("target") or {}).get("name")
    for column in schema["columns"]:
        name = column["name"]
        if name not in frame.columns:
            report.hard.append(
                Problem(
                    column=name,
                    kind="missing_column",
                    rows=0,
                    detail="is in schema.json but missing from the data",
                )
            )
            continue
        series = frame[name]
        nulls = series.isna().to_numpy()
        if nulls.any() and not column.get("nullable", False):
            report.hard.append(
                Problem(
                    column=name,
                    kind="null",
                    rows=int(nulls.sum()),
                    first_row=_first(nulls, row_offset),
                    detail="empty values, but training had none",
                )
            )
        if column["type"] in ("number", "integer"):
            _check_numbers(name, column, series, row_offset, report)
        elif column["type"] == "boolean":
            _check_boolean(name, series, row_offset, report)
        else:
            _check_string(name, column, series, row_offset, report)
    for name in frame.columns:
        if name not in expected and name != target:
            report.soft.append(
                Problem(
                    column=name,
                    kind="extra_column",
                    rows=0,
                    detail="is not in schema.json (not passed to the model)",
                )
            )
    return report
