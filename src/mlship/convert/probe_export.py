"""mlship's probe, part 3 of 3 (after probe_survey.py): the chosen model's frames, export, verify.

Sent as text and run in the notebook's kernel in the same namespace as the parts before it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import pickle
import sys
import types
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING or __name__ != "_mlship_probe":  # in the kernel: from the parts run before this one
    from mlship.convert.probe import STATE, _is_sparse, _user_items, _vector
    from mlship.convert.probe_survey import _select_columns, _write_json, plain


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
