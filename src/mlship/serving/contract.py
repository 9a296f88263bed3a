"""The input contract from schema.json, compiled once at start: validate rows, build the model's frame.

Validation is per column over the whole request (``set(map(type, column))``, ``min``/``max`` and set
inclusion run in C); only when a check fails is the column walked row by row to name the culprits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain, repeat
from operator import eq, itemgetter
from typing import Any, Union

import numpy as np  # noqa: TID253 - the serving runtime imports its own dependencies at module level
import orjson
import pandas as pd  # noqa: TID253

KINDS = ("number", "integer", "boolean", "string")
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
FLOAT_MAX = 1.7976931348623157e308  # the bound the OpenAPI document states for an unbounded number column
MAX_PROBLEMS = 20

_JSON_TYPE = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    type(None): "null",
    list: "array",
    dict: "object",
}
_ALLOWED: dict[str, frozenset[type]] = {
    "number": frozenset({int, float}),
    "integer": frozenset({int, float}),
    "boolean": frozenset({bool}),
    "string": frozenset({str}),
}
_EXPECTED = {"number": "a number", "integer": "an integer", "boolean": "true or false", "string": "a string"}


Accepted = Union[np.ndarray, list[tuple[Any, ...]]]  # noqa: UP007 - a runtime alias, also on Python 3.10
_NUMBERS = frozenset({int, float})


class SchemaError(ValueError):
    """schema.json is malformed; the message names the field."""


@dataclass(frozen=True, order=True)
class Problem:
    """One reason a request was refused: the row (None for the whole body), the field, and what is wrong."""

    row: int | None
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class InvalidRequest(Exception):
    """The body does not satisfy the contract (HTTP 422); ``problems`` name rows and fields."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        ordered = sorted(problems, key=lambda p: (p.row if p.row is not None else -1, p.field or ""))
        self.problems = ordered[:MAX_PROBLEMS]
        self.total = len(ordered)
        super().__init__(str(ordered[0]) if ordered else "invalid request")


class TooManyRows(Exception):
    """More rows than ``max_batch_rows`` (HTTP 413)."""


def _json_type(value: Any) -> str:
    return _JSON_TYPE.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class Column:
    """One input column and its enforced limits."""

    name: str
    kind: str
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[Any, ...] | None = None

    @property
    def dtype(self) -> Any:
        """The frame dtype for this column (None: let pandas infer, as ``pd.DataFrame(rows)`` would)."""
        if self.kind == "number" or (self.kind == "integer" and self.nullable):
            return np.float64
        if self.kind == "integer":
            return np.int64
        if self.kind == "boolean":
            return object if self.nullable else np.bool_
        return None

    def bounds(self) -> tuple[float | None, float | None]:
        """The bounds actually enforced: the schema's, narrowed to int64 for integer columns."""
        if self.kind != "integer":
            return self.minimum, self.maximum
        low = INT64_MIN if self.minimum is None else max(self.minimum, INT64_MIN)
        high = INT64_MAX if self.maximum is None else min(self.maximum, INT64_MAX)
        return low, high

    def stated_bounds(self) -> tuple[float | None, float | None]:
        """The bounds the OpenAPI document states: ``bounds()``, and ±FLOAT_MAX for an unbounded number."""
        low, high = self.bounds()
        if self.kind == "number":
            low = -FLOAT_MAX if low is None else low
            high = FLOAT_MAX if high is None else high
        return low, high

    def on_a_bound(self, values: Sequence[Any]) -> bool:
        """Does a value equal a stated bound? As written it may lie just beyond it (``_check_exactly``)."""
        low, high = self.stated_bounds()
        return (low is not None and low in values) or (high is not None and high in values)

    def check(self, values: Sequence[Any], problems: list[Problem]) -> None:
        """Append a Problem for each value of this column (one per row) that breaks the contract."""
        allowed = _ALLOWED[self.kind]
        types = set(map(type, values))
        if not self.nullable or type(None) not in types:
            present: Sequence[Any] = values
        else:
            types.discard(type(None))
            present = [v for v in values if v is not None]
        if not types <= allowed:
            self._each(
                values,
                problems,
                lambda v: type(v) not in allowed or v is None and not self.nullable,
                self._type_message,
            )
            return
        if not present:
            return
        if self.kind in ("number", "integer"):
            self._check_numbers(values, present, types, problems)
        elif self.enum is not None and not set(present) <= set(self.enum):
            enum = set(self.enum)
            choices = ", ".join(repr(c) for c in self.enum if c is not None)
            self._each(
                values,
                problems,
                lambda v: v is not None and v not in enum,
                lambda v: f"{v!r} is not one of: {choices}",
            )

    def _check_numbers(
        self, values: Sequence[Any], present: Sequence[Any], types: set[type], problems: list[Problem]
    ) -> None:
        if (
            self.kind == "integer"
            and float in types
            and not all(v.is_integer() for v in present if type(v) is float)
        ):
            self._each(
                values,
                problems,
                lambda v: type(v) is float and not v.is_integer(),
                lambda v: f"expected an integer, got {v!r}",
            )
            return
        low, high = self.bounds()
        smallest, largest = min(present), max(present)
        if low is not None and smallest < low:
            self._each(
                values,
                problems,
                lambda v: v is not None and v < low,
                lambda v: f"{v!r} is below the minimum {low!r}",
            )
        if high is not None and largest > high:
            self._each(
                values,
                problems,
                lambda v: v is not None and v > high,
                lambda v: f"{v!r} is above the maximum {high!r}",
            )
        if float in types and not (math.isfinite(smallest) and math.isfinite(largest)):
            self._each(
                values,
                problems,
                lambda v: type(v) is float and not math.isfinite(v),
                lambda v: f"{v!r} is not a finite number",
            )

    def _type_message(self, value: Any) -> str:
        if value is None:
            return "null is not allowed (the column is not nullable)"
        return f"expected {_EXPECTED[self.kind]}, got {_json_type(value)}"

    def _each(
        self,
        values: Iterable[Any],
        problems: list[Problem],
        bad: Callable[[Any], bool],
        message: Callable[[Any], str],
    ) -> None:
        for row, value in enumerate(values):
            if bad(value):
                problems.append(Problem(row, self.name, message(value)))


def _parse_column(raw: Any, index: int) -> Column:
    where = f"schema.json columns[{index}]"
    if not isinstance(raw, dict):
        raise SchemaError(f"{where}: expected an object, got {_json_type(raw)}")
    name, kind = raw.get("name"), raw.get("type")
    if not isinstance(name, str) or not name:
        raise SchemaError(f"{where}.name: expected a non-empty string, got {name!r}")
    if kind not in KINDS:
        raise SchemaError(f"{where} ('{name}').type: expected one of {', '.join(KINDS)}, got {kind!r}")
    nullable = raw.get("nullable", False)
    if not isinstance(nullable, bool):
        raise SchemaError(f"{where} ('{name}').nullable: expected true or false, got {nullable!r}")
    bounds: dict[str, float | None] = {}
    for key in ("minimum", "maximum"):
        value = raw.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        ):
            raise SchemaError(f"{where} ('{name}').{key}: expected a number, got {value!r}")
        if value is not None and kind not in ("number", "integer"):
            raise SchemaError(f"{where} ('{name}').{key}: only number and integer columns have bounds")
        bounds[key] = value
    enum = raw.get("enum")
    if enum is not None:
        if (
            not isinstance(enum, list)
            or not enum
            or kind != "string"
            or not all(isinstance(v, str) for v in enum)
        ):
            raise SchemaError(
                f"{where} ('{name}').enum: expected a non-empty list of strings on a string column"
            )
        enum = tuple(dict.fromkeys(enum))
    return Column(
        name=name,
        kind=kind,
        nullable=nullable,
        minimum=bounds["minimum"],
        maximum=bounds["maximum"],
        enum=enum,
    )


class InputContract:
    """schema.json compiled: validates request bodies and turns accepted rows into the model's DataFrame."""

    def __init__(self, columns: Sequence[Column], schema: dict[str, Any] | None = None) -> None:
        if not columns:
            raise SchemaError("schema.json columns: the list is empty; the model needs at least one input")
        names = [c.name for c in columns]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise SchemaError(f"schema.json columns: duplicated name(s) {', '.join(duplicated)}")
        self.columns = tuple(columns)
        self.names = tuple(names)
        self.schema = schema or {}
        self._keys = frozenset(names)
        self._index = pd.Index(names)
        getter = itemgetter(*names)
        self._row: Callable[[dict[str, Any]], tuple[Any, ...]] = (
            getter if len(names) > 1 else (lambda row: (getter(row),))
        )
        self._all_float = all(c.dtype is np.float64 for c in columns)
        # Schemas of non-nullable numbers only (the common tabular case) are checked as one float block.
        self._numeric = all(c.kind in ("number", "integer") and not c.nullable for c in columns)
        # Parsed numbers are always finite (orjson refuses the rest), so the stated ±FLOAT_MAX of an unbounded
        # column bounds exactly what -inf/+inf would; equality with a bound is what _check_exactly needs.
        bounds = [c.stated_bounds() for c in columns]
        self._lows = np.array([-np.inf if low is None else low for low, _ in bounds], dtype=np.float64)
        self._highs = np.array([np.inf if high is None else high for _, high in bounds], dtype=np.float64)
        self._integers = [i for i, c in enumerate(columns) if c.kind == "integer"]
        self._numbers = tuple(c for c in columns if c.kind in ("number", "integer"))

    @classmethod
    def from_schema(cls, schema: Any) -> InputContract:
        """Compile a parsed schema.json; raise SchemaError naming the field that is wrong."""
        if not isinstance(schema, dict):
            raise SchemaError(f"schema.json: expected a JSON object, got {_json_type(schema)}")
        version = schema.get("mlship_schema", 1)
        if version != 1:
            raise SchemaError(f"schema.json mlship_schema: version {version!r} is not supported (expected 1)")
        raw_columns = schema.get("columns")
        if not isinstance(raw_columns, list):
            raise SchemaError("schema.json columns: expected a list of column objects")
        return cls([_parse_column(raw, i) for i, raw in enumerate(raw_columns)], schema)

    # --- requests -----------------------------------------------------------------------------------------

    def parse(self, body: bytes, max_rows: int) -> tuple[Accepted, Any]:
        """Decode and validate a JSON body; return the accepted rows and the decoded data."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise InvalidRequest([Problem(None, None, f"malformed JSON: {error}")]) from None
        accepted, on_a_bound = self._validate(data, max_rows)
        if on_a_bound:
            self._check_exactly(body)
        return accepted, data

    def validate(self, data: Any, max_rows: int) -> Accepted:
        """Validate one row (an object) or a list of rows; raise InvalidRequest or TooManyRows.

        The accepted rows are a float array (rows × columns) for all-numeric schemas, else a list of tuples
        in column order; ``frame`` turns either into the model's DataFrame.
        """
        return self._validate(data, max_rows)[0]

    def _check_exactly(self, body: bytes) -> None:
        """Compare numbers with the stated bounds as written in the body, not as doubles.

        A number written with more digits than a double holds (``-9223372036854775809``, a 309-digit
        integer, ``-1e-400``) is parsed to the nearest double, which may be the bound itself although the
        number lies beyond it. The OpenAPI document's bounds are exact decimals, so the service compares
        exactly too — only for requests where a value landed on a bound, so the usual path pays nothing.
        """
        try:
            data = json.loads(body, parse_float=Decimal)
        except (ValueError, RecursionError):  # orjson read it; the stdlib should too
            return
        rows = [data] if isinstance(data, dict) else data
        problems: list[Problem] = []
        for column in self._numbers:
            low, high = (None if b is None else _exact(b) for b in column.stated_bounds())
            for index, row in enumerate(rows):
                value = row.get(column.name) if isinstance(row, dict) else None
                if value is None or isinstance(value, bool) or not isinstance(value, (int, Decimal)):
                    continue
                exact = Decimal(value)
                if low is not None and exact < low:
                    message = f"{_shown(exact)} is below the minimum {low}"
                    problems.append(Problem(index, column.name, message))
                elif high is not None and exact > high:
                    message = f"{_shown(exact)} is above the maximum {high}"
                    problems.append(Problem(index, column.name, message))
        if problems:
            raise InvalidRequest(problems)

    def _validate(self, data: Any, max_rows: int) -> tuple[Accepted, bool]:
        """``validate``, and whether a number equals one of its column's stated bounds."""
        if isinstance(data, dict):
            rows: list[Any] = [data]
        elif isinstance(data, list):
            rows = data
            if not rows:
                raise InvalidRequest(
                    [
                        Problem(
                            None, None, "empty list: send one row (an object) or a list of at least one row"
                        )
                    ]
                )
            if len(rows) > max_rows:
                raise TooManyRows(
                    f"{len(rows)} rows is more than this service's limit of {max_rows} rows per "
                    f"request (serving.max_batch_rows); split the batch"
                )
        else:
            raise InvalidRequest(
                [
                    Problem(
                        None,
                        None,
                        f"expected a JSON object (one row) or a list of objects, got {_json_type(data)}",
                    )
                ]
            )
        try:
            shaped = all(map(eq, map(dict.keys, rows), repeat(self._keys)))
        except TypeError:  # an element that is not an object
            shaped = False
        if not shaped:
            raise InvalidRequest(self._shape_problems(rows))
        tuples = list(map(self._row, rows))
        if self._numeric:
            block = self._numeric_block(tuples)
            if block is not None:
                return block, bool(((block == self._lows) | (block == self._highs)).any())
        problems: list[Problem] = []
        on_a_bound = False
        for column, values in zip(self.columns, zip(*tuples, strict=True), strict=True):
            column.check(values, problems)
            if len(problems) > MAX_PROBLEMS:
                break
            if not problems and not on_a_bound and column.kind in ("number", "integer"):
                on_a_bound = column.on_a_bound(values)
        if problems:
            raise InvalidRequest(problems)
        return tuples, on_a_bound

    def _numeric_block(self, tuples: list[tuple[Any, ...]]) -> np.ndarray | None:
        """The rows as one float array if every check passes; None sends them through the exact checks."""
        if not set(map(type, chain.from_iterable(tuples))) <= _NUMBERS:
            return None
        block = np.array(tuples, dtype=np.float64).reshape(len(tuples), len(self.names))
        if (block < self._lows).any() or (block > self._highs).any():
            return None
        if self._integers:
            whole = block[:, self._integers]
            if (whole != np.floor(whole)).any() or (np.abs(whole) > 2**53).any():  # beyond 2**53: exact ints
                return None
        return block

    def _shape_problems(self, rows: Sequence[Any]) -> list[Problem]:
        problems: list[Problem] = []
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                problems.append(Problem(index, None, f"expected an object (one row), got {_json_type(row)}"))
                continue
            for name in self.names:
                if name not in row:
                    problems.append(Problem(index, name, "missing field (required)"))
            for name in row:
                if name not in self._keys:
                    problems.append(Problem(index, str(name), "unknown field (not in the model's schema)"))
            if len(problems) > MAX_PROBLEMS:
                break
        return problems

    # --- the model's input ----------------------------------------------------------------------------------

    def frame(self, *parts: Accepted) -> pd.DataFrame:
        """One DataFrame for one or more requests' accepted rows: schema column order, dtypes per column."""
        arrays = [part for part in parts if isinstance(part, np.ndarray)]
        if len(arrays) == len(parts):
            block = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
            if not self._integers:
                return pd.DataFrame(block, columns=self._index, copy=False)
            data: dict[str, Any] = {
                c.name: block[:, i].astype(np.int64) if c.kind == "integer" else block[:, i]
                for i, c in enumerate(self.columns)
            }
            return pd.DataFrame(data, columns=self._index, copy=False)
        rows = list(chain.from_iterable(p.tolist() if isinstance(p, np.ndarray) else p for p in parts))
        if self._all_float:
            return pd.DataFrame(
                np.array(rows, dtype=np.float64).reshape(len(rows), len(self.names)),
                columns=self._index,
                copy=False,
            )
        data = {}
        for column, values in zip(self.columns, zip(*rows, strict=True), strict=True):
            dtype = column.dtype
            if dtype is None:
                data[column.name] = list(values)
            elif dtype is object:
                data[column.name] = np.array([np.nan if v is None else v for v in values], dtype=object)
            else:
                data[column.name] = np.array(values, dtype=dtype)
        return pd.DataFrame(data, columns=self._index, copy=False)

    def example_row(self, preferred: dict[str, Any] | None = None) -> dict[str, Any]:
        """A row for the self-test and the OpenAPI example: service.json's, schema.json's, or made up."""
        for candidate in (preferred, self.schema.get("example")):
            if isinstance(candidate, dict) and candidate:
                return dict(candidate)
        return {c.name: _typical(c, self._observed(c.name)) for c in self.columns}

    def _observed(self, name: str) -> dict[str, Any]:
        for raw in self.schema.get("columns", []):
            if isinstance(raw, dict) and raw.get("name") == name and isinstance(raw.get("observed"), dict):
                return dict(raw["observed"])
        return {}


def _exact(bound: float) -> Decimal:
    """A bound as the OpenAPI document writes it: an int exactly, a float as its shortest repr."""
    return Decimal(bound) if isinstance(bound, int) else Decimal(repr(float(bound)))


def _shown(value: Decimal) -> str:
    text = str(value)
    return text if len(text) <= 40 else f"{text[:24]}... ({len(text)} characters)"


def _typical(column: Column, observed: dict[str, Any]) -> Any:
    """A value the column accepts, close to the training data's middle."""
    if column.kind == "boolean":
        return False
    if column.kind == "string":
        if column.enum:
            return column.enum[0]
        frequencies = observed.get("frequencies")
        if isinstance(frequencies, dict) and frequencies:
            return str(max(frequencies, key=lambda k: frequencies[k]))
        return ""
    quantiles = observed.get("quantiles")
    value: float = 0.0
    if isinstance(quantiles, dict) and isinstance(quantiles.get("0.5"), (int, float)):
        value = float(quantiles["0.5"])
    elif column.minimum is not None and column.maximum is not None:
        value = (column.minimum + column.maximum) / 2
    low, high = column.bounds()
    if low is not None:
        value = max(value, low)
    if high is not None:
        value = min(value, high)
    if column.kind == "integer":
        whole = round(value)
        if low is not None and whole < low:
            whole = math.ceil(low)
        if high is not None and whole > high:
            whole = math.floor(high)
        return int(whole)
    return value
