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

import contextlib
import importlib.util
import io
import json
import math
import os
import pickle
import re
import sys
import types
import warnings
import weakref
from pathlib import Path
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


def task_of(estimator: Any) -> str | None:
    """binary, multiclass, regression, or None (clustering, outlier detection, unknown)."""
    kind = None
    try:
        from sklearn.base import is_classifier, is_regressor

        kind = "classifier" if is_classifier(estimator) else "regressor" if is_regressor(estimator) else None
    except Exception:
        kind = None
    if kind is None:
        kind = getattr(estimator, "_estimator_type", None)
    classes = getattr(estimator, "classes_", None) if kind != "regressor" else None
    if kind == "classifier" or (kind is None and classes is not None):
        try:
            count = len(classes) if classes is not None else 0
        except TypeError:
            return None
        if count < 2:
            return None
        return "binary" if count == 2 else "multiclass"
    return "regression" if kind == "regressor" else None


def plain(value: Any) -> Any:
    """A JSON-safe scalar (numpy → Python; NaN → None; other objects → text)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    item = getattr(value, "item", None)
    if callable(item):
        with contextlib.suppress(Exception):
            return plain(item())
    text = str(value)
    return None if text in ("nan", "NaT", "<NA>", "None") else text


def _features(estimator: Any) -> tuple[list[str] | None, int | None]:
    names = getattr(estimator, "feature_names_in_", None)
    count = getattr(estimator, "n_features_in_", None)
    with contextlib.suppress(Exception):
        count = int(count) if count is not None else None
    return ([str(name) for name in names] if names is not None else None), count


def describe(estimator: Any) -> str:
    """'Pipeline(ColumnTransformer → GradientBoostingClassifier)' or the class name."""
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list) and steps:
        return f"{type(estimator).__name__}({' → '.join(type(step[1]).__name__ for step in steps)})"
    return type(estimator).__name__


def _components(value: Any, depth: int = 0, seen: set[int] | None = None) -> set[int]:
    """ids of every estimator nested inside `value` (pipeline steps, ensemble members, wrapped models)."""
    seen = set() if seen is None else seen
    if depth > 5 or id(value) in seen:
        return seen
    for item in list(getattr(value, "__dict__", {}).values()):
        for inner in _flatten(item):
            part = _is_estimator(inner) or callable(getattr(inner, "transform", None))
            if inner is not value and part and id(inner) not in seen:
                seen.add(id(inner))
                _components(inner, depth + 1, seen)
    return seen


def _flatten(item: Any) -> list[Any]:
    if isinstance(item, (list, tuple)):
        flat: list[Any] = []
        for inner in item[:200]:
            flat.extend(_flatten(inner) if isinstance(inner, (list, tuple)) else [inner])
        return flat
    if isinstance(item, dict):
        return list(item.values())[:200]
    return [item]


def _select_columns(estimator: Any, x_value: Any) -> tuple[Any, str | None]:
    """The part of X the estimator takes, or (None, why not)."""
    names, count = _features(estimator)
    if type(x_value).__name__ == "DataFrame":
        columns = [str(column) for column in x_value.columns]
        if names is not None:
            if not set(names) <= set(columns):
                return None, "lacks some of the model's columns"
            by_name = {str(column): column for column in x_value.columns}
            return x_value[[by_name[name] for name in names]], None
        if count is not None and count != len(columns):
            return None, f"has {len(columns)} columns, the model takes {count}"
        return x_value, None
    if names is not None:
        return None, "has no column names, the model was fitted on named columns"
    width = x_value.shape[1] if getattr(x_value, "ndim", 1) == 2 else None
    if count is not None and width is not None and count != width:
        return None, f"has {width} columns, the model takes {count}"
    return x_value, None


def _labels_fit(estimator: Any, task: str, y_value: Any) -> bool:
    import numpy as np

    values = _vector(y_value)
    if task == "regression":
        return bool(values.dtype.kind in "fiub" or all(isinstance(v, (int, float)) for v in values[:50]))
    classes = list(getattr(estimator, "classes_", []))
    try:
        seen = set(np.unique(values[:100_000]).tolist())
        known = set(np.asarray(classes).tolist())
    except TypeError:
        seen, known = {str(v) for v in values[:100_000]}, {str(c) for c in classes}
    return seen <= known


def _head(value: Any, rows: int) -> Any:
    if hasattr(value, "iloc"):
        return value.iloc[:rows]
    return value[:rows]


def consistent(estimator: Any, task: str, pair: dict[str, Any]) -> tuple[bool, str]:
    """Whether the estimator, as it is now, takes this pair's X (its columns) and predicts its y (labels)."""
    selected, why = _select_columns(estimator, pair["x_value"])
    if selected is None:
        return False, str(why)
    if not _labels_fit(estimator, task, pair["y_value"]):
        return (
            False,
            "its labels are not the model's classes" if task != "regression" else "labels not numeric",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            estimator.predict(_head(selected, SAMPLE_ROWS))
        except Exception as error:
            return False, f"the model cannot predict it ({type(error).__name__})"
    return True, ""


SCORE_ROWS = 2000


def quick_score(estimator: Any, task: str, pair: dict[str, Any]) -> float | None:
    """Accuracy (classification) or R² (regression) on up to SCORE_ROWS rows of a consistent pair: the pair
    a model scores best on is the one it was made for (scaled vs raw columns, log vs raw target)."""
    import numpy as np

    selected, _ = _select_columns(estimator, pair["x_value"])
    if selected is None:
        return None
    truth = _vector(pair["y_value"])[:SCORE_ROWS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            predicted = np.asarray(estimator.predict(_head(selected, SCORE_ROWS))).ravel()
        except Exception:
            return None
    if task == "regression":
        truth = truth.astype(float)
        spread = float(((truth - truth.mean()) ** 2).sum())
        if spread == 0:
            return None
        return float(1 - ((truth - predicted.astype(float)) ** 2).sum() / spread)
    return float(np.mean([plain(a) == plain(b) for a, b in zip(truth, predicted, strict=False)]))


# --- survey -------------------------------------------------------------------------------------------------


def survey(shell: Any, request: dict[str, Any]) -> None:
    """Describe every fitted estimator and train/held-out pair; write survey.json into request['out']."""
    items = _user_items(shell)
    pairs = find_pairs(items)
    y_names = {
        str(value.name)
        for name, value in items
        if type(value).__name__ == "Series"
        and value.name is not None
        and (role_of(name) or ("", ""))[0] == "y"
    }
    found: dict[int, dict[str, Any]] = {}
    unfitted, unsupervised = [], []
    for alias, value, via, search in _estimators(shell):
        if via == "search-without-refit" or not _safe_fitted(value):
            note = " (refit=False: no refit best estimator)" if via == "search-without-refit" else ""
            unfitted.append({"name": alias, "type": type(value).__name__ + note})
            continue
        entry = found.get(id(value))
        if entry is not None:
            entry["aliases"].append(alias)
            entry["vias"].append(via)
            if search and not entry["search"]:
                entry["search"] = search
            continue
        task = task_of(value)
        if task is None or via == "name" and _is_search(value):
            unsupervised.append({"name": alias, "type": type(value).__name__})
            continue
        names, count = _features(value)
        found[id(value)] = {
            "id": id(value),
            "aliases": [alias],
            "vias": [via],
            "search": search,
            "search_type": type(_lookup(shell, search)).__name__ if search else None,
            "type": type(value).__name__,
            "module": type(value).__module__,
            "description": describe(value),
            "fit_cell": STATE["fits"].get(id(value), 0),
            "task": task,
            "classes": [plain(c) for c in getattr(value, "classes_", [])] if task != "regression" else None,
            "n_features": count,
            "features": names,
            "proba": hasattr(value, "predict_proba"),
            "decision": hasattr(value, "decision_function"),
        }
        STATE["objects"][id(value)] = value
    parts: dict[int, set[int]] = {key: _components(STATE["objects"][key]) for key in found}
    for key in list(found):
        if any(key in inner for other, inner in parts.items() if other != key):
            del found[key]  # a step of a pipeline or a member of an ensemble: part of another candidate
    STATE["pairs"] = {}
    for entry in found.values():
        estimator = STATE["objects"][entry["id"]]
        extra = _frame_pairs(items, entry["features"] or [], y_names) if entry["features"] else []
        entry["pairs"] = []
        for pair in [*pairs, *extra]:
            ok, why = consistent(estimator, entry["task"], pair)
            STATE["pairs"][f"{pair['x']}|{pair['y']}"] = pair
            entry["pairs"].append(
                {
                    "x": pair["x"],
                    "y": pair["y"],
                    "split": pair["split"],
                    "rows": pair["rows"],
                    "exact": pair["exact"],
                    "consistent": ok,
                    "why": why,
                    "score": quick_score(estimator, entry["task"], pair) if ok else None,
                }
            )
    explicit: dict[str, dict[str, Any]] = {}
    for expression in request.get("explicit", []):
        try:
            value = eval(expression, shell.user_ns)  # noqa: S307 - the user's own notebook names it
        except Exception as error:
            explicit[expression] = {"id": None, "error": f"{type(error).__name__}: {error}"}
            continue
        if _is_search(value) and getattr(value, "best_estimator_", None) is not None:
            value = value.best_estimator_
        explicit[expression] = {"id": id(value) if id(value) in found else None, "type": type(value).__name__}
    transformers = [
        {"name": name, "type": type(value).__name__}
        for name, value in items
        if callable(getattr(type(value), "transform", None))
        and not callable(getattr(type(value), "predict", None))
        and callable(getattr(type(value), "fit", None))
        and _safe_fitted(value)
    ]
    others = [
        {"name": name, "type": type(value).__name__, "module": type(value).__module__}
        for name, value in items
        if callable(getattr(value, "predict", None))
        and not _is_estimator(value)
        and not isinstance(value, type)
    ]
    report = {
        "cells": STATE["cell"],
        "candidates": list(found.values()),
        "unfitted": unfitted,
        "unsupervised": unsupervised,
        "others": others,
        "transformers": transformers,
        "pairs": [{"x": p["x"], "y": p["y"], "split": p["split"], "rows": p["rows"]} for p in pairs],
        "explicit": explicit,
        "reads": [{"path": path, "cell": cell} for path, cell in STATE["reads"].items()],
        "writes": [{"path": path, "cell": cell} for path, cell in STATE["writes"].items()],
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "executable": sys.executable,
        "hook_errors": STATE.get("hook_errors", []),
    }
    _write_json(Path(request["out"]) / "survey.json", report)


def _lookup(shell: Any, name: str | None) -> Any:
    if name is None:
        return None
    with contextlib.suppress(Exception):
        return eval(name, shell.user_ns)  # noqa: S307 - a name found in the user's namespace
    return None


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, default=plain, allow_nan=False), encoding="utf-8")


# --- export -------------------------------------------------------------------------------------------------


def _column_names(shell: Any, array: Any, count: int) -> tuple[list[str], str]:
    """Names for the columns of a plain array: those of a table or dataset (Bunch) in the notebook that holds
    the same rows, else x0 … xN."""
    import numpy as np

    try:
        values = np.asarray(array, dtype=float)
    except (TypeError, ValueError):
        values = None
    if values is not None and len(values):
        probes = values[[0, len(values) // 2, len(values) - 1]]
        for name, value in _user_items(shell):
            source, labels = None, None
            if type(value).__name__ == "DataFrame" and len(value.columns) == count:
                source, labels = value, list(value.columns)
            elif hasattr(value, "feature_names") and hasattr(value, "data"):
                with contextlib.suppress(TypeError):
                    if len(value.feature_names) == count:
                        source, labels = value.data, list(value.feature_names)
            if source is None or labels is None:
                continue
            try:
                table = np.asarray(source, dtype=float)
            except (TypeError, ValueError):
                continue
            if table.ndim != 2 or table.shape[1] != count:
                continue
            with np.errstate(invalid="ignore"):
                if all(bool((np.abs(table - row) < 1e-9).all(axis=1).any()) for row in probes):
                    return [str(label) for label in labels], name
    return [f"x{position}" for position in range(count)], ""


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    result = []
    for name in names:
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        seen.setdefault(name, 0)
        result.append(name)
    return result


def _as_frame(shell: Any, estimator: Any, x_value: Any) -> tuple[Any, dict[str, Any]]:
    """The model's input as a DataFrame with string column names, and how to turn rows back into it."""
    import numpy as np
    import pandas as pd

    selected, _ = _select_columns(estimator, x_value)
    selected = x_value if selected is None else selected
    kind_name = type(selected).__name__
    info: dict[str, Any]
    fitted_on_array = (
        kind_name == "DataFrame"
        and getattr(estimator, "feature_names_in_", None) is None
        and getattr(estimator, "n_features_in_", None) is not None
        and all(isinstance(label, str) for label in selected.columns)
    )
    if fitted_on_array:  # fit(X_train.values, …): the model takes an array; the table names its columns
        array = selected.to_numpy()
        frame = pd.DataFrame(array, columns=_unique([str(label) for label in selected.columns]))
        info = {
            "kind": "array",
            "columns": list(frame.columns),
            "labels": None,
            "names_from": "",
            "array_dtype": str(array.dtype),
        }
    elif kind_name == "DataFrame":
        labels = list(selected.columns)
        names = _unique([str(label) for label in labels])
        frame = selected.set_axis(names, axis=1).reset_index(drop=True)
        restore = all(isinstance(label, (int, str)) and not isinstance(label, bool) for label in labels)
        info = {
            "kind": "frame",
            "columns": names,
            "labels": [plain(label) for label in labels] if restore and names != labels else None,
        }
    elif (
        kind_name == "Series"
        or (isinstance(selected, np.ndarray) and selected.ndim == 1)
        or isinstance(selected, list)
    ):
        name = getattr(selected, "name", None)
        column = str(name) if isinstance(name, str) and name else "text"
        frame = pd.DataFrame({column: list(selected)})
        info = {"kind": "text", "columns": [column], "labels": None}
    else:
        array = np.asarray(selected)
        names, source = _column_names(shell, array, array.shape[1])
        frame = pd.DataFrame(array, columns=_unique(names))
        info = {
            "kind": "array",
            "columns": list(frame.columns),
            "labels": None,
            "names_from": source,
            "array_dtype": str(array.dtype),
        }
    info["dtypes"] = {column: str(frame[column].dtype) for column in frame.columns}
    info["categories"] = {
        column: [plain(value) for value in frame[column].cat.categories]
        for column in frame.columns
        if str(frame[column].dtype) == "category"
    }
    return frame, info


def _target_name(y_value: Any, columns: list[str]) -> str:
    name = getattr(y_value, "name", None)
    if type(y_value).__name__ == "DataFrame":
        name = y_value.columns[0]
    target = str(name) if isinstance(name, (str, int)) and not isinstance(name, bool) else "target"
    while target in columns:
        target += "_"
    return target


class _Recorder(pickle.Pickler):
    """Pickles into nothing, noting the notebook's own classes/functions and every module it meets."""

    def __init__(self) -> None:
        super().__init__(_Sink(), protocol=pickle.HIGHEST_PROTOCOL)
        self.defined: dict[int, Any] = {}
        self.modules: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
        target = obj if isinstance(obj, (type, types.FunctionType)) else type(obj)
        module = getattr(target, "__module__", None) or ""
        if module == "__main__":
            self.defined[id(target)] = target
        elif module and not module.startswith("_"):
            self.modules.add(module.split(".")[0])
        return NotImplemented


class _Sink(io.RawIOBase):
    def write(self, data: Any) -> int:
        return len(data)

    def writable(self) -> bool:
        return True


def _dump(estimator: Any, path: Path) -> dict[str, Any]:
    """joblib.dump the estimator; classes/functions defined in the notebook are saved as `solution.NAME`
    (solution.py defines them), since `__main__` does not exist in the service."""
    import joblib

    recorder = _Recorder()
    try:
        recorder.dump(estimator)
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}
    defined = list(recorder.defined.values())
    fake = types.ModuleType("solution")
    previous = sys.modules.get("solution")
    for item in defined:
        setattr(fake, item.__qualname__.split(".")[0], item)
        item.__module__ = "solution"
    sys.modules["solution"] = fake
    try:
        joblib.dump(estimator, path)
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}
    finally:
        for item in defined:
            item.__module__ = "__main__"
        if previous is not None:
            sys.modules["solution"] = previous
        else:
            sys.modules.pop("solution", None)
    return {
        "defined": [
            {"name": item.__qualname__, "kind": "class" if isinstance(item, type) else "function"}
            for item in defined
        ],
        "modules": sorted(recorder.modules),
    }


def export(shell: Any, request: dict[str, Any]) -> None:
    """Dump the chosen estimator and the data that goes with it; write export.json into request['out']."""
    out = Path(request["out"])
    estimator = STATE["objects"][request["candidate"]]
    task = request["task"]
    result: dict[str, Any] = {"task": task}
    pair = STATE["pairs"].get(request.get("pair") or "")
    train = STATE["pairs"].get(request.get("train") or "")
    for chosen in (pair, train):
        if chosen is not None and _is_sparse(chosen["x_value"]):
            result["sparse"] = {"x": chosen["x"], "columns": int(chosen["x_value"].shape[1])}
            _write_json(out / "export.json", result)
            return
    frames: dict[str, Any] = {"heldout": None, "train": None}
    if pair is not None:
        frame, info = _as_frame(shell, estimator, pair["x_value"])
        target = _target_name(pair["y_value"], list(frame.columns))
        frame[target] = _vector(pair["y_value"])
        frames["heldout"] = frame
        STATE["heldout"] = (_select_columns(estimator, pair["x_value"])[0], _vector(pair["y_value"]))
        result.update(input=info, target=target, rows=len(frame))
        frame.to_csv(request["test_csv"], index=False)
    if train is not None:
        frame, info_train = _as_frame(shell, estimator, train["x_value"])
        target = result.get("target") or _target_name(train["y_value"], list(frame.columns))
        frame[target] = _vector(train["y_value"])
        frames["train"] = frame
        result.setdefault("input", info_train)
        result.setdefault("target", target)
        if pair is None:  # no held-out rows: the golden predictions are made on training rows
            frame.head(int(request.get("golden_rows", 50))).to_csv(request["rows_csv"], index=False)
    STATE["frames"] = frames
    if request.get("pickles"):  # mlship runs in another environment: it reads the frames itself
        for name, frame in frames.items():
            if frame is not None:
                frame.to_pickle(out / f"{name}.pkl")
    (out / "model").mkdir(exist_ok=True)
    result["dump"] = _dump(estimator, out / "model" / request["artifact"])
    result["classes"] = (
        [plain(c) for c in getattr(estimator, "classes_", [])] if task != "regression" else None
    )
    result["proba"] = hasattr(estimator, "predict_proba")
    result["decision"] = hasattr(estimator, "decision_function")
    result["type"] = type(estimator).__name__
    result["module"] = type(estimator).__module__
    STATE["export"] = estimator
    _write_json(out / "export.json", result)


# --- verify -------------------------------------------------------------------------------------------------


def _import_solution(path: Path) -> Any:
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location("solution", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["solution"] = module
    spec.loader.exec_module(module)
    return module


def _scores(model: Any, frame: Any) -> tuple[Any, str | None]:
    import numpy as np

    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(frame), dtype=float), "proba"
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(frame), dtype=float), "decision"
    return None, None


def verify(shell: Any, request: dict[str, Any]) -> None:
    """Load the generated project's Model as the gate will, predict test.csv with it, compare with the
    notebook's own estimator on the same rows; write verify.json into request['out']."""
    import numpy as np
    import pandas as pd

    module = _import_solution(Path(request["solution"]))
    model = module.Model()
    model.load(Path(request["artifacts"]))
    frame = pd.read_csv(request["test_csv"], dtype={name: str for name in request.get("text_columns", [])})
    truth = frame.pop(request["target"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = np.asarray(model.predict(frame))
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels.ravel()
        scores, kind = _scores(model, frame)
        raw = None
        heldout = STATE.get("heldout")
        if heldout is not None and STATE.get("export") is not None:
            raw = np.asarray(STATE["export"].predict(heldout[0]))
    STATE["verified"] = {"truth": truth.to_numpy(), "labels": labels, "scores": scores, "kind": kind}
    STATE["verified"]["classes"] = getattr(model, "classes_", None)
    regression = request["task"] == "regression"
    agreement = None
    if raw is not None and len(raw) == len(labels):
        if regression:
            same = np.isclose(raw.astype(float), labels.astype(float), rtol=1e-6, atol=1e-9)
        else:
            same = np.asarray([plain(a) == plain(b) for a, b in zip(raw, labels, strict=True)])
        agreement = float(np.mean(same)) if len(same) else 1.0
    count = min(int(request.get("golden_rows", 50)), len(frame))
    golden = frame.head(count)
    report = {
        "truth": [plain(value) for value in truth.tolist()],
        "labels": [plain(value) for value in labels.tolist()],
        "scores": None if scores is None else scores.tolist(),
        "score_kind": kind,
        "classes": None
        if getattr(model, "classes_", None) is None
        else [plain(value) for value in model.classes_],
        "agreement": agreement,
        "golden": {
            "columns": [str(column) for column in golden.columns],
            "rows": [[plain(value) for value in row] for row in golden.itertuples(index=False, name=None)],
            "predictions": [plain(value) for value in labels[:count].tolist()],
            "scores": None if scores is None else scores[:count].tolist(),
            "score_kind": kind,
        },
    }
    _write_json(Path(request["out"]) / "verify.json", report)


# --- schema and metrics, with mlship's own code (only when the kernel runs mlship's interpreter) ------------


def schema(shell: Any, request: dict[str, Any]) -> None:
    """schema.json from the training rows (else the held-out ones); nullable where held-out rows have any."""
    from mlship.project.schema import infer_schema

    frames = STATE["frames"]
    source = frames["train"] if frames["train"] is not None else frames["heldout"]
    target = request["target"]
    inferred = infer_schema(source.drop(columns=[target]), source[target], request["task"])
    if frames["heldout"] is not None:
        for column in inferred["columns"]:
            if frames["heldout"][column["name"]].isna().any():
                column["nullable"] = True
    Path(request["path"]).write_text(json.dumps(inferred, indent=1) + "\n", encoding="utf-8")


def metrics(shell: Any, request: dict[str, Any]) -> None:
    """The metrics of the verified predictions, computed as the release gate computes them."""
    from mlship.errors import MlshipError
    from mlship.gate.metrics import evaluate_predictions
    from mlship.project.config import Evaluation, Threshold

    verified = STATE["verified"]
    evaluation = Evaluation(
        target=request["target"],
        metrics={name: Threshold() for name in request["metrics"]},
        positive_label=request.get("positive_label"),
    )
    try:
        results = evaluate_predictions(
            verified["truth"],
            verified["labels"],
            verified["scores"],
            evaluation,
            task=request["task"],
            classes=None if verified["classes"] is None else list(verified["classes"]),
            score_kind=verified["kind"],
        )
    except MlshipError as error:
        _write_json(Path(request["out"]) / "metrics.json", {"error": error.message})
        return
    _write_json(Path(request["out"]) / "metrics.json", {"values": {r.name: r.value for r in results}})


# --- distributions ------------------------------------------------------------------------------------------


def distributions(shell: Any, request: dict[str, Any]) -> None:
    """The installed distributions (and versions) providing each module; write distributions.json."""
    from importlib import metadata

    mapping = metadata.packages_distributions()
    modules: dict[str, list[list[str]]] = {}
    for module in request["modules"]:
        pairs = []
        for distribution in mapping.get(module, []):
            with contextlib.suppress(Exception):
                pairs.append([distribution, metadata.version(distribution)])
        modules[module] = pairs
    stdlib = sorted(set(getattr(sys, "stdlib_module_names", ())) & set(request["modules"]))
    _write_json(Path(request["out"]) / "distributions.json", {"modules": modules, "stdlib": stdlib})
