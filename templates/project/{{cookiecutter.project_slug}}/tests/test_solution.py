"""The project's own tests: `mlship test` runs them before the release gate."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solution import TARGET, Model  # noqa: E402


@pytest.fixture(scope="module")
def model() -> Model:
    loaded = Model()
    loaded.load(ROOT / "model")
    return loaded


@pytest.fixture(scope="module")
def test_data() -> pd.DataFrame:
    return pd.read_csv(ROOT / "data" / "test.csv")


def test_predicts_one_label_per_row(model: Model, test_data: pd.DataFrame) -> None:
    rows = test_data.drop(columns=[TARGET])
    predictions = list(model.predict(rows))
    assert len(predictions) == len(rows)
    assert set(predictions) <= set(model.classes_)


def test_probabilities_are_distributions(model: Model, test_data: pd.DataFrame) -> None:
    probabilities = model.predict_proba(test_data.drop(columns=[TARGET]).head(20))
    assert probabilities.shape == (20, len(model.classes_))
    assert abs(probabilities.sum(axis=1) - 1).max() < 1e-9


def test_beats_majority_class(model: Model, test_data: pd.DataFrame) -> None:
    labels = test_data[TARGET]
    accuracy = (pd.Series(model.predict(test_data.drop(columns=[TARGET]))) == labels.values).mean()
    assert accuracy > labels.value_counts(normalize=True).max()


def test_schema_lists_the_model_inputs(test_data: pd.DataFrame) -> None:
    schema = json.loads((ROOT / "schema.json").read_text())
    assert [column["name"] for column in schema["columns"]] == [c for c in test_data.columns if c != TARGET]
