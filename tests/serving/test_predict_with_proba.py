"""LoadedModel asks a model with predict_with_proba for both answers in one call, and checks them the same."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlship.serving.loading import LoadedModel, ModelOutputError


class Both:
    """predict / predict_proba / predict_with_proba, counting the calls each gets."""

    classes_ = [0, 1]

    def __init__(self, rows_out: int | None = None) -> None:
        self.calls: list[str] = []
        self.rows_out = rows_out

    def predict(self, rows: pd.DataFrame) -> list[int]:
        self.calls.append("predict")
        return [int(x > 0.5) for x in rows["x"]]

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        self.calls.append("predict_proba")
        x = rows["x"].to_numpy()
        return np.column_stack([1 - x, x])

    def predict_with_proba(self, rows: pd.DataFrame) -> tuple[list[Any], np.ndarray]:
        self.calls.append("predict_with_proba")
        x = rows["x"].to_numpy()[: self.rows_out]
        return [int(v > 0.5) for v in x], np.column_stack([1 - x, x])


def test_scores_wanted_means_one_call_to_predict_with_proba() -> None:
    model = Both()
    predictions, probabilities = LoadedModel(model).predict(pd.DataFrame({"x": [0.2, 0.9]}))
    assert model.calls == ["predict_with_proba"]
    assert list(predictions) == [0, 1]
    assert probabilities is not None and probabilities.tolist() == [[0.8, 0.2], [pytest.approx(0.1), 0.9]]


def test_predictions_only_still_calls_predict_alone() -> None:
    model = Both()
    predictions, probabilities = LoadedModel(model).predict(pd.DataFrame({"x": [0.7]}), scores=False)
    assert model.calls == ["predict"] and list(predictions) == [1] and probabilities is None


def test_predict_with_proba_answers_are_checked_like_the_others() -> None:
    with pytest.raises(ModelOutputError, match="1 predictions for 2 rows"):
        LoadedModel(Both(rows_out=1)).predict(pd.DataFrame({"x": [0.2, 0.9]}))
