"""A typed decode for all-numeric schemas: the body goes straight from JSON to one float block.

msgspec decodes each row into a struct whose fields are the schema's columns typed ``float``, with unknown
fields forbidden, so the per-row shape and type checks run inside the decoder (in C) and no dict is built.
It never refuses a body itself: whatever it cannot take (a bool, a string or null in a field, a missing or
unknown field, a number beyond a double, malformed JSON, an empty list) returns None, and the caller takes
the general path, which names the row and field. What it accepts, the general path accepts with the same
numbers (the equivalence is tested); the caller still applies the bounds and integer checks to the block.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any, Union

import msgspec
import numpy as np  # noqa: TID253 - the serving runtime imports its own dependencies at module level


class TypedDecoder:
    """Decodes a body of one row (an object) or a list of rows into a float array (rows × columns)."""

    def __init__(self, names: Sequence[str]) -> None:
        fields = [f"f{index}" for index in range(len(names))]
        row = msgspec.defstruct(
            "Row",
            [(field, float) for field in fields],
            rename=dict(zip(fields, names, strict=True)),
            forbid_unknown_fields=True,
            gc=False,
        )
        shape: Any = Union[list[row], row]  # type: ignore[valid-type]  # noqa: UP007 - a type built at runtime
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(shape)
        self._row = row
        self._width = len(names)
        self._astuple = msgspec.structs.astuple

    def decode(self, body: bytes, max_rows: int) -> np.ndarray | None:
        """The rows as a float block, or None when the body needs the general path."""
        try:
            decoded = self._decoder.decode(body)
        except msgspec.DecodeError:  # ValidationError included
            return None
        rows = [decoded] if isinstance(decoded, self._row) else decoded
        if not rows or len(rows) > max_rows:
            return None
        count = len(rows) * self._width
        values = chain.from_iterable(map(self._astuple, rows))
        return np.fromiter(values, dtype=np.float64, count=count).reshape(len(rows), self._width)
