"""Start-up: check the artifacts against their recorded hashes (and skops files against the types the build
recorded), import solution.py, load the model."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np  # noqa: TID253 - the serving runtime imports its own dependencies at module level

from .artifacts import ArtifactTrust, ArtifactTrustError, enforce
from .settings import ServiceInfo


class StartupError(RuntimeError):
    """The service cannot start: one line naming the file and what is wrong."""


class ModelOutputError(RuntimeError):
    """The model answered something the service cannot send (wrong length, shape or type)."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _inside(project_dir: Path, relative: str, what: str) -> Path:
    path = (project_dir / relative).resolve()
    if not path.is_relative_to(project_dir.resolve()):
        raise StartupError(f"{what} '{relative}' is outside the project folder {project_dir}")
    return path


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_artifacts(project_dir: Path, info: ServiceInfo) -> None:
    """Refuse to start when a recorded artifact is missing, differs, or an unrecorded one was added.

    Pickled models run code when loaded, so with ``artifact_sha256`` present every file in the artifacts
    folder must be listed and match; without it (``mlship serve`` on a working folder) nothing is checked.
    """
    artifacts = _inside(project_dir, info.artifacts, "service.json artifacts")
    if not artifacts.exists():
        raise StartupError(f"artifacts '{info.artifacts}' not found in {project_dir}")
    if not info.artifact_sha256:
        return
    root = project_dir.resolve()
    for relative, expected in sorted(info.artifact_sha256.items()):
        path = _inside(project_dir, relative, "service.json artifact_sha256 entry")
        if not path.is_file():
            raise StartupError(
                f"artifact {relative}: missing, but service.json records its sha256; "
                "rebuild the image or restore the file"
            )
        found = sha256_file(path)
        if found != expected:
            raise StartupError(
                f"artifact {relative}: sha256 {found[:12]}… differs from {expected[:12]}… recorded "
                "in service.json; refusing to load it (pickled models run code when loaded)"
            )
    recorded = {Path(relative).as_posix() for relative in info.artifact_sha256}
    files = [artifacts] if artifacts.is_file() else sorted(p for p in artifacts.rglob("*") if p.is_file())
    for path in files:
        relative = path.resolve().relative_to(root).as_posix()
        if relative not in recorded:
            raise StartupError(
                f"artifact {relative}: not recorded in service.json artifact_sha256; refusing to "
                "start with an unverified file in the artifacts folder"
            )


def check_artifact_trust(project_dir: Path, info: ServiceInfo) -> None:
    """Refuse skops artefacts that hold a type the build did not record (see ``artifacts``); a no-op for
    joblib/pickle artefacts and on a working folder without artifact-trust.json."""
    try:
        enforce(project_dir, info.artifacts, ArtifactTrust.for_project(project_dir))
    except ArtifactTrustError as error:
        raise StartupError(str(error)) from error


def import_solution(project_dir: Path, info: ServiceInfo) -> Any:
    """Import solution.py under its own module name (pickles may refer to it) and return its module."""
    path = _inside(project_dir, info.solution, "service.json solution")
    if not path.is_file():
        raise StartupError(f"{info.solution}: not found in {project_dir}")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise StartupError(f"{info.solution}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:  # any failure of user code is a start-up failure
        sys.modules.pop(path.stem, None)
        raise StartupError(f"{info.solution}: importing it failed: {_first_line(error)}") from error
    return module


class LoadedModel:
    """The user's ``Model`` behind one call that returns JSON-ready predictions (and probabilities)."""

    def __init__(self, model: Any, fallback_classes: Sequence[Any] | None = None) -> None:
        self.model = model
        self.has_proba = callable(getattr(model, "predict_proba", None))
        # Optional: predict_with_proba(rows) -> (predictions, probabilities), both from one pass.
        self.has_both = self.has_proba and callable(getattr(model, "predict_with_proba", None))
        # Without predict_proba, decision_function's scores are what ROC AUC and thresholds need.
        self.has_decision = not self.has_proba and callable(getattr(model, "decision_function", None))
        self.scores_key = "probabilities" if self.has_proba else "scores" if self.has_decision else None
        classes = getattr(model, "classes_", None)
        if classes is None:
            classes = fallback_classes
        self.classes: list[Any] | None = _plain_list(classes) if classes is not None else None

    def predict(self, frame: Any, scores: bool = True) -> tuple[Any, np.ndarray | None]:
        """Predictions (an array orjson can write, or a list) and, with ``scores``, the probabilities (or
        decision scores) when the model has them."""
        rows = len(frame)
        both = scores and self.has_both
        if both:  # one pass of the model for both (a single row's cost is mostly the model's overhead)
            answer, proba = self.model.predict_with_proba(frame)
        else:
            answer, proba = self.model.predict(frame), None
        predictions = _json_ready(answer)
        if len(predictions) != rows:
            raise ModelOutputError(f"Model.predict returned {len(predictions)} predictions for {rows} rows")
        probabilities = None
        if scores and self.has_proba:
            if not both:
                proba = self.model.predict_proba(frame)
            probabilities = np.ascontiguousarray(proba, dtype=np.float64)
            if probabilities.ndim != 2 or probabilities.shape[0] != rows:
                raise ModelOutputError(
                    f"Model.predict_proba returned shape {probabilities.shape} for {rows} rows; "
                    "expected (rows, classes)"
                )
        elif scores and self.has_decision:
            probabilities = np.ascontiguousarray(self.model.decision_function(frame), dtype=np.float64)
            if probabilities.shape[0] != rows:
                raise ModelOutputError(
                    f"Model.decision_function returned shape {probabilities.shape} for {rows} rows"
                )
        return predictions, probabilities


def _plain_list(values: Any) -> list[Any]:
    if hasattr(values, "tolist"):
        return list(values.tolist())
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def _json_ready(predictions: Any) -> Any:
    """Numeric numpy arrays stay arrays (orjson writes them natively); anything else becomes a list."""
    if isinstance(predictions, np.ndarray):
        if predictions.dtype.kind in "biuf" and predictions.flags.c_contiguous:
            return predictions
        return predictions.tolist()
    if hasattr(predictions, "to_numpy"):  # pandas Series / Index
        return _json_ready(predictions.to_numpy())
    return _plain_list(predictions)


def load_model(
    project_dir: Path, info: ServiceInfo, fallback_classes: Sequence[Any] | None = None
) -> LoadedModel:
    """Verify artifacts (hashes, skops types), import solution.py, build ``Model()``, call ``load()``."""
    project_dir = Path(project_dir)
    verify_artifacts(project_dir, info)
    check_artifact_trust(project_dir, info)
    module = import_solution(project_dir, info)
    model_class = getattr(module, "Model", None)
    if not isinstance(model_class, type):
        raise StartupError(
            f"{info.solution}: defines no class 'Model' (the service needs Model with load and predict)"
        )
    if not callable(getattr(model_class, "predict", None)):
        raise StartupError(f"{info.solution}: class Model has no predict(self, rows) method")
    try:
        model = model_class()
        loader = getattr(model, "load", None)
        if callable(loader):
            loader(_inside(project_dir, info.artifacts, "service.json artifacts"))
    except (Exception, SystemExit) as error:  # a corrupt artifact raises anything
        raise StartupError(
            f"{info.solution}: Model.load('{info.artifacts}') failed: {_first_line(error)}"
        ) from error
    return LoadedModel(model, fallback_classes)
