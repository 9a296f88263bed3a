"""The input contract from schema.json, compiled once at start: validate rows, build the model's frame.

Validation is per column over the whole request (``set(map(type, column))``, ``min``/``max`` and set
inclusion run in C); only when a check fails is the column walked row by row to name the culprits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from itertools import chain
from operator import itemgetter
from typing import Any, Union

import numpy as np  # noqa: TID253 - the serving runtime imports its own dependencies at module level
import orjson
import pandas as pd  # noqa: TID253

from .columns import (
    _NUMBERS,
    Column,
    Problem,
    SchemaError,
    _exact,
    _json_type,
    _parse_column,
    _shown,
    _typical,
)
from .typed import TypedDecoder

MAX_PROBLEMS = 20
Accepted = Union[np.ndarray, list[tuple[Any, ...]]]  # noqa: UP007 - a runtime alias, also on Python 3.10


class InvalidRequest(Exception):
    """The body does not satisfy the contract (HTTP 422); ``problems`` name rows and fields."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        ordered = sorted(problems, key=lambda p: (p.row if p.row is not None else -1, p.field or ""))
        self.problems = ordered[:MAX_PROBLEMS]
        self.total = len(ordered)
        super().__init__(str(ordered[0]) if ordered else "invalid request")


class TooManyRows(Exception):
    """More rows than ``max_batch_rows`` (HTTP 413)."""


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
        self._typed = TypedDecoder(names) if self._numeric else None

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

    def parse(self, body: bytes, max_rows: int, *, keep_data: bool = False) -> tuple[Accepted, Any]:
        """Decode and validate a JSON body; return the accepted rows and, on request, the decoded data.

        All-numeric schemas first try the typed decode (straight to the float block); whatever it does not
        accept, and every body when the decoded data is wanted, takes the general path below.
        """
        block = self._typed.decode(body, max_rows) if self._typed is not None and not keep_data else None
        if block is not None and self._within(block):
            accepted: Accepted = block
            data, on_a_bound = None, self._on_a_bound(block)
        else:
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
        # Every row has every field (the getter raises KeyError otherwise, TypeError on a non-object) and
        # no other (as many keys as fields): together, exactly the schema's fields, without a set per row.
        try:
            if self._numeric:
                flat = list(chain.from_iterable(map(self._row, rows)))
            else:
                tuples = list(map(self._row, rows))
            shaped = set(map(len, rows)) == {len(self.names)}
        except (KeyError, TypeError):
            shaped = False
        if not shaped:
            raise InvalidRequest(self._shape_problems(rows))
        if self._numeric:
            block = self._numeric_block(flat, len(rows))
            if block is not None:
                return block, self._on_a_bound(block)
            tuples = list(map(self._row, rows))
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

    def _numeric_block(self, flat: list[Any], rows: int) -> np.ndarray | None:
        """The rows' values (row after row) as one float array if every check passes, else None.

        None sends the rows through the per-column checks, which name the culprits.
        """
        if not set(map(type, flat)) <= _NUMBERS:
            return None
        block = np.fromiter(flat, dtype=np.float64, count=len(flat)).reshape(rows, len(self.names))
        return block if self._within(block) else None

    def _within(self, block: np.ndarray) -> bool:
        """Every value within its column's bounds, and whole (and exact as a double) in integer columns."""
        if (block < self._lows).any() or (block > self._highs).any():
            return False
        if self._integers:
            whole = block[:, self._integers]
            if (whole != np.floor(whole)).any() or (np.abs(whole) > 2**53).any():  # beyond 2**53: exact ints
                return False
        return True

    def _on_a_bound(self, block: np.ndarray) -> bool:
        return bool(((block == self._lows) | (block == self._highs)).any())

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
