"""Rows checked one by one before scoring: each refused row keeps its reason, naming the column."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlship.errors import DataError
from mlship.ops.factory.result import reason_column
from mlship.ops.factory.rows import REASON, ROW_ID, split_rows

SCHEMA: dict[str, Any] = {
    "columns": [
        {"name": "amount", "type": "number", "nullable": False, "minimum": 0.0, "maximum": 100.0},
        {"name": "items", "type": "integer", "nullable": True},
        {"name": "channel", "type": "string", "nullable": False, "enum": ["web", "pos"]},
        {"name": "member", "type": "boolean", "nullable": False},
    ]
}


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": [1.5, "x", 3.0, 250.0, 5.0, 6.0, 7.0],
            "items": [1, 2, 2.5, 4, None, 6, 7],
            "channel": ["web", "pos", "web", "web", "fax", None, "pos"],
            "member": [True, False, "true", "False", "yes", True, False],
        }
    )


def test_each_invalid_row_is_refused_with_the_first_reason_naming_its_column() -> None:
    valid, rejected = split_rows(_frame(), SCHEMA, first_row=100, source="in.csv")
    assert list(valid[ROW_ID]) == [100, 106]
    assert list(rejected[ROW_ID]) == [101, 102, 103, 104, 105]
    reasons = list(rejected[REASON])
    assert reasons[0] == "column 'amount': expected a number, got 'x'"
    assert reasons[1] == "column 'items': expected an integer, got 2.5"
    assert reasons[2].startswith("column 'amount': above the maximum 100.0")
    assert reasons[3].startswith("column 'channel': a category not seen in training, got 'fax'")
    assert reasons[4] == "column 'channel': empty, but training had no empty values"
    assert [reason_column(r) for r in reasons] == ["amount", "items", "amount", "channel", "channel"]


def test_valid_rows_come_out_in_the_schema_dtypes() -> None:
    valid, _ = split_rows(_frame(), SCHEMA, first_row=0, source="in.csv")
    assert valid["amount"].dtype == np.float64
    assert valid["items"].dtype == np.int64
    assert valid["member"].dtype == bool
    assert list(valid["member"]) == [True, False]


def test_a_clean_chunk_rejects_nothing() -> None:
    frame = pd.DataFrame(
        {"amount": [1.0, 2.0], "items": [1, 2], "channel": ["web", "pos"], "member": [True, False]}
    )
    valid, rejected = split_rows(frame, SCHEMA, first_row=0, source="in.csv")
    assert len(valid) == 2 and len(rejected) == 0


def test_a_missing_column_is_an_error_naming_it() -> None:
    with pytest.raises(DataError, match="in.csv has no column 'member'"):
        split_rows(_frame().drop(columns=["member"]), SCHEMA, first_row=0, source="in.csv")
