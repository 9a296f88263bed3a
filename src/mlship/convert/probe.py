"""mlship's observer inside the notebook's kernel. This file is sent as text and run there, so it imports
only the standard library at module level (the kernel may run another environment, without mlship).

    install(shell, root)      before the first cell: note every fit (after each cell, by comparing the
                              fitted state of each estimator) and every file the notebook opens under root
    survey(shell, request)    after the last cell: fitted estimators, train/held-out pairs, which pairs
                              each estimator is consistent with → survey.json
    export(shell, request)    the chosen estimator → model.joblib, held-out and training frames, input facts
    verify(shell, request)    import the generated solution.py, predict the written test.csv with it
                              → verify.json (predictions, scores, agreement with the notebook's model)

Everything mlship writes comes from this one kernel, i.e. from one execution of the notebook.
"""

from __future__ import annotations

import os
import re
import sys
import types
import warnings
import weakref
from typing import Any

STATE: dict[str, Any] = {
    "cell": 0,  # ordinal of the last executed notebook cell (1-based)
    "fits": {},  # id(estimator) → ordinal of the cell after which its fitted state last changed
    "tokens": {},  # id(estimator) → (weak reference, fitted-state token)
    "reads": {},  # files opened for reading under root (absolute path → first cell ordinal)
    "writes": {},
    "root": "",
    "objects": {},  # id → object, for export/verify (strong references after the survey)
    "export": None,
}

_CACHE = re.compile(r"^(_+|_\d+|_i+\d*|_oh|_ih|_dh|Out|In|_exit_code|exit|quit|get_ipython)$")
X_WORDS = frozenset({"x", "features", "feature", "feats", "inputs", "input", "predictors", "attributes"})
Y_WORDS = frozenset({"y", "target", "targets", "label", "labels", "outcome", "response", "truth"})
HELD_WORDS = frozenset(
    {"test", "tst", "val", "valid", "validation", "holdout", "hold", "heldout", "eval", "dev", "te", "ho"}
)
TRAIN_WORDS = frozenset({"train", "tr", "trn", "training", "fit"})
MAX_CONTAINER = 500
SAMPLE_ROWS = 5


# --- what the notebook defines -----------------------------------------------------------------------------


def _user_items(shell: Any) -> list[tuple[str, Any]]:
    """Top-level user variables: no IPython internals, no output cache (`_`, `_3`, `Out`), no modules."""
    hidden = getattr(shell, "user_ns_hidden", {})
    items = []
    for name, value in list(shell.user_ns.items()):
        if name.startswith("__") or _CACHE.match(name):
            continue
        if name in hidden and hidden[name] is value:
            continue
        if isinstance(value, (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType)):
            continue
        items.append((name, value))
    return items


def _is_estimator(value: Any) -> bool:
    kind = type(value)
    return (
        not isinstance(value, type)
        and callable(getattr(kind, "fit", None))
        and callable(getattr(kind, "predict", None))
    )


def _is_fitted(value: Any) -> bool:
    try:
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted
    except ImportError:
        return any(key.endswith("_") and not key.startswith("__") for key in vars(value))
    try:
        check_is_fitted(value)
    except NotFittedError:
        return False
    except Exception:
        return any(key.endswith("_") and not key.startswith("__") for key in getattr(value, "__dict__", {}))
    return True


def _is_search(value: Any) -> bool:
    return hasattr(value, "cv_results_") or type(value).__name__.endswith("SearchCV")


def _estimators(shell: Any) -> list[tuple[str, Any, str, str | None]]:
    """(alias, estimator, how it is reached, the search it is the best estimator of) for every estimator
    bound to a user variable, held in a list/tuple/dict variable, or refit by a search."""
    found: list[tuple[str, Any, str, str | None]] = []

    def add(alias: str, value: Any, via: str) -> None:
        if _is_search(value):
            best = getattr(value, "best_estimator_", None) if _safe_fitted(value) else None
            if best is not None:
                found.append((f"{alias}.best_estimator_", best, "search", alias))
            else:
                found.append((alias, value, "search-without-refit", None))
            return
        found.append((alias, value, via, None))

    for name, value in _user_items(shell):
        if _is_estimator(value):
            add(name, value, "name")
        elif isinstance(value, (list, tuple)) and 0 < len(value) <= MAX_CONTAINER:
            for position, item in enumerate(value):
                if _is_estimator(item):
                    add(f"{name}[{position}]", item, "item")
                elif isinstance(item, tuple) and len(item) == 2 and _is_estimator(item[1]):
                    add(f"{name}[{position}][1]", item[1], "item")
        elif isinstance(value, dict) and 0 < len(value) <= MAX_CONTAINER:
            for key, item in list(value.items()):
                if _is_estimator(item):
                    add(f"{name}[{key!r}]", item, "item")
    return found


def _safe_fitted(value: Any) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _is_fitted(value)
        except Exception:
            return False


def _token(value: Any, depth: int = 0) -> tuple[Any, ...]:
    """A cheap fingerprint of an estimator's fitted state: refitting replaces its fitted attributes."""
    parts: list[Any] = []
    for key, item in list(getattr(value, "__dict__", {}).items()):
        if key.endswith("_") and not key.startswith("__"):
            parts.append((key, id(item)))
    steps = getattr(value, "steps", None)
    if isinstance(steps, list) and depth < 4:
        for step in steps:
            if isinstance(step, tuple) and len(step) >= 2:
                parts.append(_token(step[1], depth + 1))
    return tuple(parts)


def _after_cell(result: Any) -> None:
    """IPython post_run_cell hook: note which estimators' fitted state changed in this cell."""
    info = getattr(result, "info", None)
    if info is None or not getattr(info, "store_history", False):
        return
    STATE["cell"] += 1
    shell = STATE["shell"]
    try:
        for _, value, _, _ in _estimators(shell):
            if not _safe_fitted(value):
                continue
            key = id(value)
            token = _token(value)
            known = STATE["tokens"].get(key)
            same_object = known is not None and known[0] is not None and known[0]() is value
            if not same_object or known[1] != token:
                STATE["fits"][key] = STATE["cell"]
            try:
                reference: Any = weakref.ref(value)
            except TypeError:
                reference = None
            STATE["tokens"][key] = (reference, token)
    except Exception as error:  # never break the user's notebook
        STATE.setdefault("hook_errors", []).append(repr(error))


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "open" or not args:
        return
    path = args[0]
    if isinstance(path, int) or path is None:
        return
    try:
        text = os.fsdecode(path)
    except TypeError:
        return
    full = os.path.realpath(os.path.join(os.getcwd(), text))
    if not full.startswith(STATE["root"]):
        return
    mode = args[1] if len(args) > 1 else None
    flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
    writing = (
        any(letter in mode for letter in "wax+")
        if isinstance(mode, str)
        else bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
    )
    (STATE["writes"] if writing else STATE["reads"]).setdefault(full, STATE["cell"] + 1)


def install(shell: Any, root: str) -> None:
    """Start observing: a post_run_cell hook for fits, an audit hook for the files the notebook opens."""
    STATE["shell"] = shell
    STATE["root"] = os.path.realpath(root) + os.sep
    shell.events.register("post_run_cell", _after_cell)
    sys.addaudithook(_audit)


# --- held-out pairs ----------------------------------------------------------------------------------------


def _words(name: str) -> list[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return [word for word in re.split(r"[^a-z0-9]+", spaced.lower()) if word]


def role_of(name: str) -> tuple[str, frozenset[str]] | None:
    """('x' or 'y', the other words) for names like X_test, y_train, test_X, Xtest, features_val."""
    words = _words(name)
    for position, word in enumerate(words):
        letter = "x" if word in X_WORDS else "y" if word in Y_WORDS else None
        rest = words[:position] + words[position + 1 :]
        if letter is None and len(word) > 1 and word[0] in "xy" and word[1:] in HELD_WORDS | TRAIN_WORDS:
            letter, rest = word[0], [*rest, word[1:]]
        if letter is not None:
            return letter, frozenset(rest)
    return None


def split_of(words: frozenset[str]) -> str:
    """'heldout', 'train' or 'all' from a name's words."""
    if words & HELD_WORDS:
        return "heldout"
    if words & TRAIN_WORDS:
        return "train"
    return "all"


def _length(value: Any) -> int | None:
    try:
        return len(value)
    except TypeError:
        return None


def _x_like(value: Any) -> bool:
    import numpy as np

    kind = type(value).__name__
    if kind == "DataFrame":
        return len(value.columns) > 0
    if isinstance(value, np.ndarray):
        return value.ndim == 2 or (value.ndim == 1 and value.dtype.kind in "OUS")
    if kind == "Series":
        return value.dtype.kind in "OUS" or str(value.dtype) in ("str", "string")
    if isinstance(value, list) and value and isinstance(value[0], str):
        return True
    return _is_sparse(value)


def _is_sparse(value: Any) -> bool:
    try:
        from scipy import sparse  # type: ignore[import-untyped]
    except ImportError:
        return False
    return bool(sparse.issparse(value))


def _y_like(value: Any) -> bool:
    import numpy as np

    kind = type(value).__name__
    if kind == "Series":
        return True
    if kind == "DataFrame":
        return len(value.columns) == 1
    if isinstance(value, np.ndarray):
        return value.ndim == 1 or (value.ndim == 2 and value.shape[1] == 1)
    return bool(isinstance(value, list) and value and isinstance(value[0], (int, float, str, bool)))


def _vector(value: Any) -> Any:
    import numpy as np

    if type(value).__name__ == "DataFrame":
        return value.iloc[:, 0].to_numpy()
    if type(value).__name__ == "Series":
        return value.to_numpy()
    return np.asarray(value).ravel()


def find_pairs(items: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Every (X, y) pair of variables whose names match (X_test/y_test, test_X/test_y, X_val_sc/y_val…)
    and whose lengths agree, with its split: heldout, train or all."""
    xs, ys = [], []
    for name, value in items:
        role = role_of(name)
        if role is None:
            continue
        if role[0] == "x" and _x_like(value):
            xs.append((name, value, role[1]))
        elif role[0] == "y" and _y_like(value):
            ys.append((name, value, role[1]))
    pairs = []
    for x_name, x_value, x_words in xs:
        for y_name, y_value, y_words in ys:
            if split_of(x_words) != split_of(y_words):
                continue
            if not (y_words <= x_words or x_words <= y_words):
                continue
            rows = _length(x_value) if not _is_sparse(x_value) else x_value.shape[0]
            if rows is None or rows != _length(y_value) or rows == 0:
                continue
            pairs.append(
                {
                    "x": x_name,
                    "y": y_name,
                    "split": split_of(x_words),
                    "rows": rows,
                    "exact": x_words == y_words,
                    "x_value": x_value,
                    "y_value": y_value,
                }
            )
    return pairs


def _frame_pairs(
    items: list[tuple[str, Any]], features: list[str], y_names: set[str]
) -> list[dict[str, Any]]:
    """Held-out DataFrames (test_df, df_val, …) that hold the model's columns and a target column named like a
    label vector of the notebook (a split made on the whole table)."""
    pairs = []
    for name, value in items:
        if type(value).__name__ != "DataFrame" or split_of(frozenset(_words(name))) != "heldout":
            continue
        columns = [str(column) for column in value.columns]
        if not features or not set(features) <= set(columns):
            continue
        extra = [column for column in columns if column not in features]
        targets = {name for name in y_names if name in extra}
        targets |= {column for column in extra if set(_words(column)) & Y_WORDS}
        if len(extra) == 1:
            targets.add(extra[0])
        for target in sorted(targets):
            if target in columns and target not in features:
                pairs.append(
                    {
                        "x": f"{name}[features]",
                        "y": f"{name}[{target!r}]",
                        "split": "heldout",
                        "rows": len(value),
                        "exact": True,
                        "x_value": value[[c for c in value.columns if str(c) in features]],
                        "y_value": value[[c for c in value.columns if str(c) == target][0]],
                    }
                )
    return pairs


# --- facts about an estimator ------------------------------------------------------------------------------
