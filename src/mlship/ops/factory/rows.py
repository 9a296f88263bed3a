"""Rows to score, checked one by one against schema.json: the valid rows in the schema's dtypes, the
others with the reason each was refused (the first problem found in the row, naming its column).

Scoring refuses what the service would refuse (422): a wrong type, an empty value in a column that had
none in training, a number outside `minimum`/`maximum`, a category outside `enum`. Both engines (in
process and Spark) call `split_rows`, so both hand the model exactly the same frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlship.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

REASON = "reject_reason"
ROW_ID = "row_id"
_TRUE = frozenset({"true", "True", "TRUE", "1"})
_FALSE = frozenset({"false", "False", "FALSE", "0"})


def _mark(
    reasons: np.ndarray[Any, Any], bad: np.ndarray[Any, Any], series: pd.Series | None, text: str
) -> None:
    """Give the rows of `bad` that have no reason yet this one (with the offending value, if given)."""
    import numpy as np

    fresh = bad & _unset(reasons)
    for position in np.flatnonzero(fresh):
        reasons[position] = text if series is None else f"{text}, got {_shown(series.iloc[position])}"


def _unset(reasons: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    import numpy as np
    import pandas as pd

    return np.asarray(pd.isna(reasons), dtype=bool)


def _shown(value: Any) -> str:
    from mlship.project.schema import json_value

    return repr(json_value(value))


def _numbers(series: pd.Series) -> pd.Series:
    import pandas as pd
    from pandas.api import types

    if types.is_bool_dtype(series.dtype):
        return pd.Series(float("nan"), index=series.index)
    if types.is_numeric_dtype(series.dtype):
        return series.astype(float)
    return pd.to_numeric(series.where(~series.map(lambda v: isinstance(v, bool))), errors="coerce")


def _booleans(series: pd.Series) -> tuple[pd.Series, np.ndarray[Any, Any]]:
    from pandas.api import types

    if types.is_bool_dtype(series.dtype):
        return series, series.notna().to_numpy()
    text = series.map(lambda v: str(v) if v is not None and v == v else None)
    known = text.isin(_TRUE | _FALSE).to_numpy()
    return text.isin(_TRUE), known


def _check_column(column: dict[str, Any], series: pd.Series, reasons: np.ndarray[Any, Any]) -> pd.Series:
    """Mark the rows whose value breaks the column's rules; return the column in its schema dtype."""
    import numpy as np
    import pandas as pd
    from pandas.api import types

    name, kind = column["name"], column["type"]
    present = series.notna().to_numpy()
    if not column.get("nullable", False):
        _mark(reasons, ~present, None, f"column '{name}': empty, but training had no empty values")
    if kind in ("number", "integer"):
        numbers = _numbers(series)
        values = numbers.to_numpy(dtype=float)
        _mark(reasons, present & np.isnan(values), series, f"column '{name}': expected a number")
        if kind == "integer":
            with np.errstate(invalid="ignore"):
                fraction = np.isfinite(values) & (values != np.floor(values))
            _mark(reasons, fraction, series, f"column '{name}': expected an integer")
        low, high = column.get("minimum"), column.get("maximum")
        with np.errstate(invalid="ignore"):
            if low is not None:
                _mark(reasons, values < low, series, f"column '{name}': below the minimum {low}")
            if high is not None:
                _mark(reasons, values > high, series, f"column '{name}': above the maximum {high}")
        if kind == "integer" and not np.isnan(values).any():
            return pd.Series(values.astype("int64"), index=series.index, name=name)
        return numbers.rename(name)
    if kind == "boolean":
        flags, known = _booleans(series)
        _mark(reasons, present & ~known, series, f"column '{name}': expected true or false")
        return flags.astype(bool) if present.all() else flags.where(present, None)
    if types.is_string_dtype(series.dtype) and not types.is_object_dtype(series.dtype):
        texts = np.ones(len(series), dtype=bool)  # a text dtype holds only text (and nulls)
    else:
        texts = series.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    _mark(reasons, present & ~texts, series, f"column '{name}': expected text")
    enum = column.get("enum")
    if enum is not None:
        unseen = present & texts & ~series.isin(enum).to_numpy()
        _mark(reasons, unseen, series, f"column '{name}': a category not seen in training")
    return series


def split_rows(
    chunk: pd.DataFrame,
    schema: dict[str, Any],
    first_row: int,
    source: str,
    row_ids: np.ndarray[Any, Any] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid rows: the schema's columns in its dtypes plus row_id; rejected rows: as read, plus row_id
    and reject_reason). `first_row` is the 0-based row id of the chunk's first row.

    A column of the schema missing from the input is not a row problem: DataError naming it.
    """
    import numpy as np
    import pandas as pd

    chunk = chunk.set_axis([str(name) for name in chunk.columns], axis=1).reset_index(drop=True)
    missing = [column["name"] for column in schema["columns"] if column["name"] not in chunk.columns]
    if missing:
        raise DataError(
            f"{source} has no column '{missing[0]}' (schema.json lists it)"
            + (f", nor {', '.join(missing[1:4])}" if len(missing) > 1 else ""),
            hint="score data with the same input columns the model was trained on",
        )
    reasons = np.full(len(chunk), None, dtype=object)
    typed = {
        column["name"]: _check_column(column, chunk[column["name"]], reasons) for column in schema["columns"]
    }
    if row_ids is None:
        row_ids = np.arange(first_row, first_row + len(chunk), dtype="int64")
    bad = ~_unset(reasons)
    if not bad.any():
        valid = pd.DataFrame(typed)
        valid[ROW_ID] = row_ids
        return valid, chunk.iloc[0:0].assign(**{ROW_ID: row_ids[:0], REASON: reasons[:0]})
    good = ~bad
    valid = pd.DataFrame({name: values[good] for name, values in typed.items()})
    for column in schema["columns"]:  # the bad rows may have kept a column in a looser dtype
        if column["type"] == "integer" and valid[column["name"]].notna().all():
            valid[column["name"]] = valid[column["name"]].astype("int64")
        elif column["type"] == "boolean" and valid[column["name"]].notna().all():
            valid[column["name"]] = valid[column["name"]].astype(bool)
    valid = valid.reset_index(drop=True)
    valid[ROW_ID] = row_ids[good]
    rejected = chunk[bad].astype(str).reset_index(drop=True)
    rejected[ROW_ID] = row_ids[bad]
    rejected[REASON] = reasons[bad].astype(str)
    return valid, rejected
