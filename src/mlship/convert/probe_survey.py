"""mlship's probe, part 2 of 3 (after probe.py): what each fitted estimator is, and the survey.

Sent as text and run in the notebook's kernel in the same namespace as probe.py (see `convert.PROBE_PARTS`).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING or __name__ != "_mlship_probe":  # in the kernel: from the parts run before this one
    from mlship.convert.probe import (
        SAMPLE_ROWS,
        STATE,
        _estimators,
        _frame_pairs,
        _is_estimator,
        _is_search,
        _safe_fitted,
        _user_items,
        _vector,
        find_pairs,
        role_of,
    )


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
