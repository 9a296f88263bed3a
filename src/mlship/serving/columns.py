"""One input column of schema.json, compiled: its checks over a whole column, its problems named by row."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np  # noqa: TID253 - the serving runtime imports its own dependencies at module level

KINDS = ("number", "integer", "boolean", "string")
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
FLOAT_MAX = 1.7976931348623157e308  # the bound the OpenAPI document states for an unbounded number column

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
