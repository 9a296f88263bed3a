"""Data guards: is the new training data fit to train on? Checked before anything is trained or written.

    rows       at least retrain.guards.min_rows rows
    columns    every schema.json column and the target, with values of the column's type
    nulls      a column's share of empty values ≤ training's (schema.json observed) + max_null_increase
    freshness  the newest value of time_column no older than max_age_hours (skipped without time_column)
    balance    each training class of the target ≥ min_class_share of the rows (classification only)
    shift      population stability index (PSI) per column vs schema.json's reference ≤ max_psi: numbers
               in the four bins the training quartiles make, categories by their training frequencies

Each guard gives a result naming the column it looked at; the first breach stops the retrain (exit 11).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from mlship.project.drift import column_psi
from mlship.project.retrain import Guards

if TYPE_CHECKING:
    import pandas as pd

GuardName = Literal["rows", "columns", "nulls", "freshness", "balance", "shift"]


class GuardResult(BaseModel):
    """One guard's verdict: what it measured, against which limit, naming the column when one breached."""

    guard: GuardName
    passed: bool
    column: str | None = None
    value: float | None = None
    limit: float | None = None
    detail: str


def _ok(guard: GuardName, detail: str, value: float | None = None, limit: float | None = None) -> GuardResult:
    return GuardResult(guard=guard, passed=True, value=value, limit=limit, detail=detail)


def _breach(
    guard: GuardName, column: str | None, detail: str, value: float | None = None, limit: float | None = None
) -> GuardResult:
    return GuardResult(guard=guard, passed=False, column=column, value=value, limit=limit, detail=detail)


def check_rows(frame: pd.DataFrame, guards: Guards) -> GuardResult:
    rows = len(frame)
    if rows < guards.min_rows:
        return _breach(
            "rows", None, f"{rows} rows, fewer than min_rows={guards.min_rows}", rows, guards.min_rows
        )
    return _ok("rows", f"{rows} rows", rows, guards.min_rows)


def check_columns(frame: pd.DataFrame, schema: dict[str, Any], target: str) -> GuardResult:
    from mlship.project.validation import validate_frame

    if target not in frame.columns:
        return _breach("columns", target, f"the target column '{target}' is missing")
    report = validate_frame(frame, schema)
    hard = [problem for problem in report.hard if problem.kind in ("missing_column", "wrong_type")]
    if hard:
        return _breach("columns", hard[0].column, hard[0].message)
    return _ok("columns", f"{len(schema['columns'])} columns of the types schema.json names, and '{target}'")


def check_nulls(frame: pd.DataFrame, schema: dict[str, Any], guards: Guards) -> GuardResult:
    for column in schema["columns"]:
        name = column["name"]
        share = float(frame[name].isna().mean()) if len(frame) else 0.0
        trained = float((column.get("observed") or {}).get("null_fraction") or 0.0)
        limit = trained + guards.max_null_increase
        if share > limit + 1e-12:
            return _breach(
                "nulls",
                name,
                f"column '{name}': {share:.1%} empty values, training had {trained:.1%} "
                f"(max_null_increase={guards.max_null_increase})",
                share,
                limit,
            )
    return _ok("nulls", "every column within its limit")


def check_freshness(frame: pd.DataFrame, guards: Guards, now: datetime | None = None) -> GuardResult:
    import pandas as pd

    name = guards.time_column
    if name is None:
        return _ok("freshness", "skipped: no retrain.guards.time_column")
    if name not in frame.columns:
        return _breach("freshness", name, f"the time column '{name}' (retrain.guards.time_column) is missing")
    stamps = pd.to_datetime(frame[name], utc=True, errors="coerce")
    newest = stamps.max()
    if newest is pd.NaT or pd.isna(newest):
        return _breach("freshness", name, f"column '{name}': no readable timestamp")
    age_hours = ((now or datetime.now(timezone.utc)) - newest.to_pydatetime()).total_seconds() / 3600
    if age_hours > guards.max_age_hours:
        return _breach(
            "freshness",
            name,
            f"column '{name}': the newest row is from {newest.isoformat()}, {age_hours:.1f} h old "
            f"(max_age_hours={guards.max_age_hours:g})",
            age_hours,
            guards.max_age_hours,
        )
    return _ok("freshness", f"newest '{name}' {age_hours:.1f} h old", age_hours, guards.max_age_hours)


def check_balance(frame: pd.DataFrame, schema: dict[str, Any], target: str, guards: Guards) -> GuardResult:
    info = schema.get("target") or {}
    classes = info.get("classes")
    if schema.get("task") == "regression" or not classes:
        return _ok("balance", "skipped: not a classification target")
    shares = frame[target].astype(str).value_counts(normalize=True)
    for label in classes:
        share = float(shares.get(str(label), 0.0))
        if share < guards.min_class_share:
            return _breach(
                "balance",
                target,
                f"column '{target}': class {label!r} is {share:.2%} of the rows "
                f"(min_class_share={guards.min_class_share})",
                share,
                guards.min_class_share,
            )
    return _ok("balance", f"every class of '{target}' ≥ {guards.min_class_share:.0%}")


def check_shift(frame: pd.DataFrame, schema: dict[str, Any], guards: Guards) -> GuardResult:
    highest: tuple[float, str] | None = None
    for column in schema["columns"]:
        value = column_psi(frame, column)
        if value is None:
            continue
        if value > guards.max_psi:
            return _breach(
                "shift",
                column["name"],
                f"column '{column['name']}': distribution shifted from training, PSI {value:.3f} "
                f"> max_psi={guards.max_psi}",
                value,
                guards.max_psi,
            )
        if highest is None or value > highest[0]:
            highest = (value, column["name"])
    if highest is None:
        return _ok("shift", "skipped: schema.json has no reference distribution")
    return _ok("shift", f"highest PSI {highest[0]:.3f} ('{highest[1]}')", highest[0], guards.max_psi)


def run_guards(
    frame: pd.DataFrame, schema: dict[str, Any], target: str, guards: Guards, now: datetime | None = None
) -> list[GuardResult]:
    """Every guard in order, stopping after the first breach (later ones would read broken data)."""
    results = [check_rows(frame, guards), check_columns(frame, schema, target)]
    if all(result.passed for result in results):
        checks: list[Callable[[], GuardResult]] = [
            lambda: check_nulls(frame, schema, guards),
            lambda: check_freshness(frame, guards, now),
            lambda: check_balance(frame, schema, target, guards),
            lambda: check_shift(frame, schema, guards),
        ]
        for check in checks:
            results.append(check())
            if not results[-1].passed:
                break
    return results
