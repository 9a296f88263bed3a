"""schema.json, the input contract: infer it from training data, load it, and turn it into the JSON Schema of
one input row (validating a DataFrame against it: `validation.py`).

The format (version 1) is described in CONTRIBUTING.md. Column names are always strings; a caller that has a
numpy array without names names its columns ``x0 … xN`` before calling :func:`infer_schema`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlship.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 1
ENUM_LIMIT = 50  # a string column with at most this many distinct values gets an enforced `enum`
BOUNDS_MARGIN = 1.0  # enforced bounds: the observed range widened by its own width on each side (a held-out
# or live value just past the training range is plausible; one ten widths away is a unit or data error)
QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)
REGRESSION_MIN_VALUES = 20  # a numeric target with more distinct values than this is a regression target
TYPES = ("integer", "number", "string", "boolean")
TASKS = ("binary", "multiclass", "regression")

ColumnType = Literal["integer", "number", "string", "boolean"]


# --- JSON-safe values ----------------------------------------------------------------------------------


def json_value(value: Any) -> Any:
    """A numpy/pandas scalar as a plain JSON value (NaN/NaT → None, Timestamp → ISO text)."""
    import numpy as np
    import pandas as pd

    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return None if math.isnan(number) or math.isinf(number) else number
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, str):
        return value
    return str(value)


# --- inference -----------------------------------------------------------------------------------------


def column_type(series: pd.Series) -> ColumnType:
    """The schema type of a column, from its dtype (or, for object columns, from its values)."""
    import pandas as pd
    from pandas.api import types

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return column_type(pd.Series(dtype.categories))
    if types.is_bool_dtype(dtype):
        return "boolean"
    if types.is_integer_dtype(dtype):
        return "integer"
    if types.is_float_dtype(dtype):
        return "number"
    if types.is_object_dtype(dtype):
        values = series.dropna()
        if len(values) and values.map(lambda v: isinstance(v, bool)).all():
            return "boolean"
        if len(values) and values.map(_is_int).all():
            return "integer"
        if len(values) and values.map(lambda v: _is_int(v) or isinstance(v, float)).all():
            return "number"
    return "string"


def _is_int(value: Any) -> bool:
    import numpy as np

    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def infer_task(target: pd.Series) -> Literal["binary", "multiclass", "regression"]:
    """Regression for a numeric target with fractions or many values; 2 classes: binary; else multiclass."""
    import numpy as np

    values = target.dropna()
    kind = column_type(values)
    if kind in ("number", "integer"):
        numbers = values.astype(float).to_numpy()
        has_fraction = bool(np.any(np.isfinite(numbers) & (numbers != np.floor(numbers))))
        if (kind == "number" and has_fraction) or values.nunique() > REGRESSION_MIN_VALUES:
            return "regression"
    return "binary" if values.nunique() <= 2 else "multiclass"


def _sorted_values(values: list[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def _bounds(low: float, high: float, kind: ColumnType) -> tuple[float, float]:
    width = high - low
    margin = BOUNDS_MARGIN * width if width > 0 else max(BOUNDS_MARGIN * abs(low), 1.0)
    lower, upper = low - margin, high + margin
    if low >= 0:
        lower = max(lower, 0.0)  # a column never negative in training (amounts, counts) stays non-negative
    if kind == "integer":
        return float(math.floor(lower)), float(math.ceil(upper))
    return lower, upper


def _number(value: float, kind: ColumnType) -> int | float:
    """An integer as int; a float rounded to 12 significant digits (no 49.35000000000001 in the file)."""
    return int(value) if kind == "integer" else float(f"{value:.12g}")


def _numeric_column(series: pd.Series, kind: ColumnType) -> tuple[dict[str, Any], dict[str, Any]]:
    import numpy as np

    values = series.dropna().astype(float)
    values = values[np.isfinite(values.to_numpy())]
    if values.empty:
        return {}, {}
    low, high = float(values.min()), float(values.max())
    lower, upper = _bounds(low, high, kind)
    quantiles = values.quantile(list(QUANTILES))
    observed = {
        "min": _number(low, kind),
        "max": _number(high, kind),
        "quantiles": {
            str(q): _number(float(v), "number") for q, v in zip(QUANTILES, quantiles.to_numpy(), strict=True)
        },
        "bins": _bins(values.to_numpy(), quantiles.to_numpy()),
    }
    return {"minimum": _number(lower, kind), "maximum": _number(upper, kind)}, observed


def _bins(values: Any, quantiles: Any) -> dict[str, list[float]]:
    """The drift bins: the distinct quantiles as edges, and the exact training share of each bin.

    Bin ``i`` holds the values above ``i`` edges (``numpy.searchsorted(edges, v, side="left")``), as the
    service counts them; exact shares matter for columns with ties (a 0/1 integer column, say).
    """
    import numpy as np

    edges = np.unique(np.asarray([_number(float(q), "number") for q in quantiles], dtype=np.float64))
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return {
        "edges": [float(e) for e in edges.tolist()],
        "shares": [round(float(c) / len(values), 6) for c in counts.tolist()],
    }


def _frequencies(values: pd.Series) -> dict[str, float]:
    counts = values.value_counts(normalize=True).head(ENUM_LIMIT)
    return {_key(value): round(float(share), 6) for value, share in counts.items()}


def _key(value: Any) -> str:
    safe = json_value(value)
    if isinstance(safe, bool):
        return "true" if safe else "false"
    return str(safe)


def _column(name: str, series: pd.Series) -> dict[str, Any]:
    kind = column_type(series)
    nulls = int(series.isna().sum())
    column: dict[str, Any] = {"name": name, "type": kind, "nullable": nulls > 0}
    observed: dict[str, Any] = {}
    present = series.dropna()
    if kind in ("number", "integer"):
        enforced, observed = _numeric_column(present, kind)
        column.update(enforced)
    elif kind == "string":
        text = present.astype(str)
        distinct = text.unique()
        if 0 < len(distinct) <= ENUM_LIMIT:
            column["enum"] = _sorted_values([str(value) for value in distinct])
        observed["frequencies"] = _frequencies(text)
    else:
        observed["frequencies"] = _frequencies(present.astype(bool))
    observed["null_fraction"] = round(nulls / len(series), 6) if len(series) else 0.0
    column["observed"] = observed
    return column


def _example(frame: pd.DataFrame, columns: list[dict[str, Any]]) -> dict[str, Any]:
    complete = frame.dropna()
    row = complete.iloc[0] if len(complete) else frame.iloc[0]
    example: dict[str, Any] = {}
    for column, value in zip(columns, row.tolist(), strict=True):
        safe = json_value(value)
        example[column["name"]] = str(safe) if column["type"] == "string" and safe is not None else safe
    return example


def infer_schema(
    frame: pd.DataFrame, target: pd.Series | None = None, task: str | None = None
) -> dict[str, Any]:
    """Infer schema.json (format version 1) from the training inputs and, optionally, the target.

    `task` is inferred from the target when not given; without a target both `task` and `target` are null.
    Raises DataError when the frame has no rows or no columns.
    """
    if len(frame) == 0 or len(frame.columns) == 0:
        raise DataError(
            f"cannot infer a schema from a table with {len(frame)} rows and {len(frame.columns)} columns",
            hint="pass the training inputs (at least one row and one column)",
        )
    if task is not None and task not in TASKS:
        raise DataError(f"unknown task '{task}'", hint=f"use one of: {', '.join(TASKS)}")
    names = [str(name) for name in frame.columns]
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise DataError(
            f"duplicate column names: {', '.join(duplicates)}", hint="give every column its own name"
        )
    frame = frame.set_axis(names, axis=1)
    columns = [_column(name, frame[name]) for name in names]
    schema: dict[str, Any] = {
        "mlship_schema": SCHEMA_VERSION,
        "task": task,
        "target": None,
        "columns": columns,
        "example": _example(frame, columns),
    }
    if target is not None:
        resolved = task or infer_task(target)
        schema["task"] = resolved
        target_info: dict[str, Any] = {
            "name": str(target.name) if target.name is not None else "target",
            "type": column_type(target.dropna()),
        }
        if resolved != "regression":
            target_info["classes"] = _sorted_values([json_value(v) for v in target.dropna().unique()])
        schema["target"] = target_info
    return schema


# --- loading -------------------------------------------------------------------------------------------


def load_schema(path: Path | str) -> dict[str, Any]:
    """Read and check schema.json; every problem is a ConfigError naming the file."""
    file = Path(path)
    hint = "regenerate it with 'mlship init --from-notebook' or fix it by hand (see CONTRIBUTING.md)"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ConfigError(f"{file}: schema file not found", hint=hint) from error
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{file}: cannot be read: {error}", hint=hint) from error
    except json.JSONDecodeError as error:
        raise ConfigError(f"{file}:{error.lineno}: not valid JSON: {error.msg}", hint=hint) from error
    problem = _format_problem(data)
    if problem:
        raise ConfigError(f"{file}: {problem}", hint=hint)
    return dict(data)


def _format_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    if data.get("mlship_schema") != SCHEMA_VERSION:
        return f"'mlship_schema' must be {SCHEMA_VERSION}, got {data.get('mlship_schema')!r}"
    if data.get("task") is not None and data["task"] not in TASKS:
        return f"'task' must be one of {', '.join(TASKS)}, got {data['task']!r}"
    columns = data.get("columns")
    if not isinstance(columns, list) or not columns:
        return "'columns' must be a non-empty list"
    seen: set[str] = set()
    for position, column in enumerate(columns):
        where = f"columns[{position}]"
        if not isinstance(column, dict) or not isinstance(column.get("name"), str):
            return f"{where} needs a string 'name'"
        if column["name"] in seen:
            return f"{where}: duplicate column '{column['name']}'"
        seen.add(column["name"])
        if column.get("type") not in TYPES:
            given = column.get("type")
            return f"{where} ('{column['name']}'): 'type' must be one of {', '.join(TYPES)}, got {given!r}"
        for bound in ("minimum", "maximum"):
            if bound in column and not isinstance(column[bound], (int, float)):
                return f"{where} ('{column['name']}'): '{bound}' must be a number"
        if "enum" in column and not isinstance(column["enum"], list):
            return f"{where} ('{column['name']}'): 'enum' must be a list"
    target = data.get("target")
    if target is not None and (not isinstance(target, dict) or not isinstance(target.get("name"), str)):
        return "'target' must be an object with a string 'name'"
    return None


# --- JSON Schema of one row ----------------------------------------------------------------------------


def row_json_schema(
    schema: dict[str, Any], *, enforce: bool = True, additional: bool = True
) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one input row.

    Every non-nullable column is required; nullable ones accept null and may be left out. With `enforce`, the
    bounds and categories of schema.json become `minimum`/`maximum`/`enum`. `additional` allows extra keys.
    """
    properties: dict[str, Any] = {}
    required: list[str] = []
    for column in schema["columns"]:
        nullable = bool(column.get("nullable", False))
        prop: dict[str, Any] = {"type": [column["type"], "null"] if nullable else column["type"]}
        if enforce:
            for bound in ("minimum", "maximum"):
                if column.get(bound) is not None:
                    prop[bound] = column[bound]
            if column.get("enum") is not None:
                prop["enum"] = [*column["enum"], None] if nullable else list(column["enum"])
        example = (schema.get("example") or {}).get(column["name"])
        if example is not None:
            prop["examples"] = [example]
        properties[column["name"]] = prop
        if not nullable:
            required.append(column["name"])
    row: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": additional,
    }
    if schema.get("example"):
        row["examples"] = [schema["example"]]
    return row
