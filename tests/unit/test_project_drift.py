"""project/drift.py: PSI of new rows against schema.json's training reference, counted chunk by chunk."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mlship.project.drift import NumericBins, ShiftCounter, column_psi, psi, reference_bins

SCHEMA = {
    "columns": [
        {"name": "x", "type": "number", "observed": {"quantiles": {"0.25": 1.0, "0.5": 2.0, "0.75": 3.0}}},
        {"name": "c", "type": "string", "observed": {"frequencies": {"a": 0.6, "b": 0.4}}},
        {"name": "free", "type": "number", "observed": {}},
    ]
}


def test_reference_bins_come_from_the_quartiles_and_the_frequencies() -> None:
    assert reference_bins(SCHEMA["columns"][0]) == NumericBins([1.0, 2.0, 3.0], [0.25] * 4, "right")
    assert reference_bins(SCHEMA["columns"][1]) == {"a": 0.6, "b": 0.4}
    assert reference_bins(SCHEMA["columns"][2]) is None


def test_rows_like_training_have_no_shift_and_shifted_rows_do() -> None:
    like = pd.DataFrame({"x": [0.5, 1.5, 2.5, 3.5] * 25, "c": ["a"] * 60 + ["b"] * 40})
    counter = ShiftCounter(SCHEMA)
    counter.add(like)
    assert counter.psi() == pytest.approx({"x": 0.0, "c": 0.0}, abs=1e-9)
    shifted = pd.DataFrame({"x": [9.0] * 100, "c": ["z"] * 100})
    value = column_psi(shifted, SCHEMA["columns"][0])
    expected = psi([0.25, 0.25, 0.25, 0.25], [0.0, 0.0, 0.0, 1.0])
    assert value == pytest.approx(expected) and value > 1
    assert column_psi(shifted, SCHEMA["columns"][1]) == pytest.approx(psi([0.6, 0.4, 0.0], [0.0, 0.0, 1.0]))


def test_counts_add_up_over_chunks_as_over_one_frame() -> None:
    frame = pd.DataFrame({"x": [0.1 * i for i in range(50)], "c": ["a", "b", "c", None, "a"] * 10})
    whole, chunked = ShiftCounter(SCHEMA), ShiftCounter(SCHEMA)
    whole.add(frame)
    chunked.add(frame.iloc[:17])
    chunked.add(frame.iloc[17:])
    assert chunked.counts == whole.counts and chunked.psi() == whole.psi()
    assert sum(whole.counts["c"]) == 40  # the empty values are not counted
    assert all(math.isfinite(v) for v in whole.psi().values())


def test_exact_bins_are_preferred_and_tied_values_are_not_drift() -> None:
    # a 0/1 column, 70 % zeros: its quantiles tie, and only the exact shares say what training held
    flag = {
        "name": "flag",
        "type": "integer",
        "observed": {
            "quantiles": {"0.25": 0.0, "0.5": 0.0, "0.75": 1.0},
            "bins": {"edges": [0.0, 1.0], "shares": [0.7, 0.3, 0.0]},
        },
    }
    assert reference_bins(flag) == NumericBins([0.0, 1.0], [0.7, 0.3, 0.0], "left")
    like = pd.DataFrame({"flag": [0] * 70 + [1] * 30})
    assert column_psi(like, flag) == pytest.approx(0.0, abs=1e-9)
    assert column_psi(pd.DataFrame({"flag": [1] * 100}), flag) > 1
