"""The rendered prepare(): rows that already follow schema.json pass as they are; others are cast."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlship.convert.render import InputSpec, _prepare


def _load(dtypes: dict[str, str], categories: dict[str, list[Any]] | None = None) -> Any:
    spec = InputSpec("frame", list(dtypes), None, dtypes, categories or {})
    namespace: dict[str, Any] = {
        "pd": pd,
        "np": np,
        "FEATURES": list(dtypes),
        "DTYPES": dtypes,
        "CATEGORIES": categories or {},
        "Any": Any,
    }
    exec(_prepare(spec), namespace)
    return namespace["prepare"]


def test_rows_that_follow_the_schema_are_passed_on_uncast() -> None:
    prepare = _load({"a": "float64", "b": "int64"})
    rows = pd.DataFrame({"a": [1.5, 2.0], "b": np.array([3, 4], dtype=np.int64)})
    out = prepare(rows)
    assert list(out.columns) == ["a", "b"]
    assert np.shares_memory(out["a"].to_numpy(), rows["a"].to_numpy())  # not copied column by column
    assert out["b"].tolist() == [3, 4]


def test_rows_in_another_order_or_dtype_are_still_cast() -> None:
    prepare = _load({"a": "float64", "b": "int64"})
    out = prepare(pd.DataFrame({"b": ["3", "4"], "a": ["1.5", None]}))
    assert list(out.columns) == ["a", "b"]
    assert str(out["a"].dtype) == "float64" and str(out["b"].dtype) == "int64"
    assert out["b"].tolist() == [3, 4] and np.isnan(out["a"][1])


def test_rows_with_the_same_dtype_names_but_another_dtype_are_cast() -> None:
    prepare = _load({"a": "float64", "b": "int32"})
    rows = pd.DataFrame({"a": np.array([1, 2], dtype=np.int64), "b": np.array([3, 4], dtype=np.int64)})
    out = prepare(rows)
    assert [str(t) for t in out.dtypes] == ["float64", "int32"]
    assert out["a"].tolist() == [1.0, 2.0]


def test_a_dtype_this_pandas_does_not_know_means_every_request_is_cast() -> None:
    prepare = _load({"a": "float64", "b": "no-such-dtype"})
    rows = pd.DataFrame({"a": [1.5], "b": [2]})
    out = prepare(rows)
    assert out is not rows and out["a"].tolist() == [1.5]


def test_categories_are_always_cast_to_the_notebooks_categories() -> None:
    prepare = _load({"c": "category"}, {"c": ["x", "y"]})
    rows = pd.DataFrame({"c": pd.Categorical(["y", "z"])})
    out = prepare(rows)
    assert list(out["c"].cat.categories) == ["x", "y"]
    assert out["c"].isna().tolist() == [False, True]


def test_predict_with_proba_is_one_pass_and_agrees_with_predict_and_predict_proba() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from mlship.convert.render import ARGMAX_MODELS, _model_class

    rng = np.random.default_rng(0)
    data = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    truth = (data["a"] + rng.normal(size=200) > 0).astype(int)
    for estimator in (
        Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]),
        SVC(probability=True, random_state=0),  # predict() is not predict_proba's argmax: asked apart
    ):
        estimator.fit(data, truth)
        namespace: dict[str, Any] = {"pd": pd, "np": np, "Any": Any, "ARGMAX_MODELS": ARGMAX_MODELS}
        namespace["prepare"] = lambda rows: rows
        exec(_model_class("binary", True, False, False), namespace)
        model = namespace["Model"]()
        model.estimator, model.classes_ = estimator, list(estimator.classes_)
        predictions, proba = model.predict_with_proba(data)
        assert predictions == model.predict(data)
        assert np.array_equal(proba, model.predict_proba(data))
