"""The model choice rule on fake candidate lists, and how the probe pairs X/y variables and checks that an
estimator is consistent with them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlship.convert.probe import find_pairs, role_of, split_of
from mlship.convert.probe_survey import consistent, task_of
from mlship.convert.select import HOW_TO_PICK, Candidate, Pair, best_heldout, choose
from mlship.errors import NotebookError


def pair(
    x: str = "X_test", y: str = "y_test", *, split: str = "heldout", ok: bool = True, rows: int = 50
) -> Pair:
    return Pair(x=x, y=y, split=split, rows=rows, consistent=ok)


def candidate(
    ident: int,
    name: str,
    cell: int,
    statement: int = 0,
    *,
    search: str | None = None,
    pairs: list[Pair] | None = None,
    scratch: bool = False,
    via: str = "name",
) -> Candidate:
    return Candidate(
        id=ident,
        aliases=[name],
        vias=[via],
        search=search,
        search_type="GridSearchCV" if search else None,
        type="Estimator",
        task="binary",
        fit_cell=cell,
        fit_statement=statement,
        scratch=scratch,
        pairs=[pair()] if pairs is None else pairs,
    )


def test_the_estimator_fitted_last_wins() -> None:
    chosen = choose([candidate(1, "baseline", 3), candidate(2, "rf", 7), candidate(3, "knn", 5)])
    assert chosen.candidate.name == "rf"
    assert chosen.heldout is not None and chosen.heldout.x == "X_test"
    assert [other.name for other in chosen.others] == ["baseline", "knn"]
    assert "fitted last" in chosen.reason


def test_statement_order_breaks_ties_within_a_cell() -> None:
    chosen = choose([candidate(1, "a", 4, statement=2), candidate(2, "b", 4, statement=1)])
    assert chosen.candidate.name == "a"


def test_a_search_best_estimator_beats_a_later_plain_estimator() -> None:
    chosen = choose(
        [
            candidate(1, "baseline", 2),
            candidate(2, "grid.best_estimator_", 5, search="grid"),
            candidate(3, "x", 9),
        ]
    )
    assert chosen.candidate.name == "grid.best_estimator_"
    assert "best estimator of GridSearchCV `grid`" in chosen.reason


def test_candidates_consistent_with_a_heldout_pair_come_first() -> None:
    stale = candidate(2, "old", 9, pairs=[pair(ok=False)])
    chosen = choose([candidate(1, "final", 4), stale])
    assert chosen.candidate.name == "final"


def test_without_any_heldout_pair_the_last_fitted_is_chosen_without_test_data() -> None:
    chosen = choose([candidate(1, "a", 1, pairs=[]), candidate(2, "b", 2, pairs=[pair(split="all")])])
    assert chosen.candidate.name == "b" and chosen.heldout is None
    assert "no held-out pair" in chosen.reason


def test_scratch_models_of_one_loop_cannot_be_decided() -> None:
    loop = [candidate(n, f"models[{n}]", 6, 1, scratch=True, via="item") for n in range(3)]
    with pytest.raises(NotebookError) as raised:
        choose([candidate(9, "baseline", 2), *loop])
    assert "cannot decide" in raised.value.message
    assert "models[0]" in raised.value.message and "models[2]" in raised.value.message
    assert raised.value.hint == HOW_TO_PICK


def test_in_a_tie_the_one_named_outside_the_loop_wins() -> None:
    named = candidate(5, "best_model", 6, 1)
    loop = [candidate(n, f"models[{n}]", 6, 1, scratch=True, via="item") for n in range(2)]
    assert choose([*loop, named]).candidate.name == "best_model"


def test_an_explicit_choice_wins_over_the_rule() -> None:
    chosen = choose([candidate(1, "first", 2), candidate(2, "last", 8)], explicit=[1], explicit_source="tag")
    assert chosen.candidate.name == "first"
    assert chosen.reason == "chosen by the notebook itself (tag)"


def test_no_candidate_is_an_error() -> None:
    with pytest.raises(NotebookError):
        choose([])


def test_best_heldout_prefers_matching_names_then_test_then_rows() -> None:
    model = candidate(
        1,
        "m",
        1,
        pairs=[
            pair("X_val", "y_val", rows=500),
            pair("X_test", "y_test", rows=100),
            Pair(x="X_test_scaled", y="y_test", split="heldout", rows=100, exact=False, consistent=True),
            pair("X_holdout", "y_holdout", ok=False, rows=900),
        ],
    )
    best = best_heldout(model)
    assert best is not None and best.x == "X_test"


# --- names of variables -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("X_test", ("x", {"test"})),
        ("y_train", ("y", {"train"})),
        ("test_X", ("x", {"test"})),
        ("Xtest", ("x", {"test"})),
        ("xTrain", ("x", {"train"})),
        ("y_test_bin", ("y", {"test", "bin"})),
        ("features_val", ("x", {"val"})),
        ("labels_valid", ("y", {"valid"})),
        ("X_tr", ("x", {"tr"})),
        ("df", None),
        ("test", None),
    ],
)
def test_role_of(name: str, role: tuple[str, set[str]] | None) -> None:
    found = role_of(name)
    assert (found[0], set(found[1])) == role if role else found is None


def test_split_of() -> None:
    assert split_of(frozenset({"test"})) == "heldout"
    assert split_of(frozenset({"train", "scaled"})) == "train"
    assert split_of(frozenset()) == "all"


def test_find_pairs_matches_names_and_lengths() -> None:
    frame = pd.DataFrame({"a": range(10), "b": range(10)})
    items = [
        ("X_train", frame.iloc[:7]),
        ("X_test", frame.iloc[7:]),
        ("X_test_scaled", np.zeros((3, 2))),
        ("y_train", pd.Series(range(7))),
        ("y_test", pd.Series(range(3))),
        ("y_val", pd.Series(range(4))),  # no X_val: no pair
        ("X", frame),
        ("y", pd.Series(range(10))),
    ]
    found = {(p["x"], p["y"], p["split"], p["exact"]) for p in find_pairs(items)}
    assert found == {
        ("X_train", "y_train", "train", True),
        ("X_test", "y_test", "heldout", True),
        ("X_test_scaled", "y_test", "heldout", False),
        ("X", "y", "all", True),
    }


def test_consistency_uses_the_final_columns_and_labels() -> None:
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"a": [0.0, 1, 2, 3, 4, 5], "b": [1.0, 0, 1, 0, 1, 0], "c": [5.0, 4, 3, 2, 1, 0]})
    model = LogisticRegression().fit(frame[["a", "c"]], [0, 0, 0, 1, 1, 1])
    task = task_of(model)
    assert task == "binary"
    ok, _ = consistent(model, task, {"x_value": frame, "y_value": pd.Series([0, 1, 0, 1, 0, 1])})
    assert ok  # the model's two columns are a subset of the held-out table's
    ok, why = consistent(model, task, {"x_value": frame[["a", "b"]], "y_value": pd.Series([0] * 6)})
    assert not ok and "columns" in why
    ok, why = consistent(model, task, {"x_value": frame, "y_value": pd.Series([0, 1, 2, 0, 1, 2])})
    assert not ok and "classes" in why


def test_a_trained_model_beats_a_copy_loaded_from_disk_later() -> None:
    trained = candidate(1, "rf", 9)
    reloaded = candidate(2, "reloaded", 11).model_copy(update={"loaded": True})
    assert choose([trained, reloaded]).candidate.name == "rf"
    assert choose([reloaded]).candidate.name == "reloaded"  # a pretrained model is still a model


def test_fit_site_knows_a_loaded_model() -> None:
    from mlship.convert.cells import clean_cell, fit_site

    assert fit_site(clean_cell(0, "m = joblib.load('m.pkl')"), ["m"]).loaded
    assert not fit_site(clean_cell(0, "m = load_model().fit(X, y)"), ["m"]).loaded


def test_the_heldout_pair_the_model_scores_best_on_wins() -> None:
    scaled = Pair(
        x="X_test_scaled", y="y_test", split="heldout", rows=100, exact=False, consistent=True, score=0.95
    )
    raw = Pair(x="X_test", y="y_test", split="heldout", rows=100, consistent=True, score=0.41)
    model = candidate(1, "svc", 3, pairs=[raw, scaled])
    best = best_heldout(model)
    assert best is not None and best.x == "X_test_scaled"
    close = Pair(x="X_test", y="y_test", split="heldout", rows=100, consistent=True, score=0.94)
    best = best_heldout(candidate(1, "svc", 3, pairs=[close, scaled]))
    assert best is not None and best.x == "X_test"  # within 0.02: the exact name wins
