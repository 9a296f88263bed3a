"""The child side of the sandbox: load the user's `Model` and answer predict requests over a pipe.

Run as ``python -m mlship.gate.sandbox_child FD_IN FD_OUT SOLUTION``. Requests and replies are pickled tuples:

    ("load", artifacts)            → ("ok", {"classes": [...] | None, "methods": [...]})
    ("predict", frame, scores)     → ("ok", (labels, scores | None, "proba" | "decision" | None))
    ("train", data_dir, artifacts, file)
                                   → ("ok", None): retrain(data_dir, artifacts) if solution.py defines it,
                                     else train(data_dir) and its result saved by save(model, artifacts)
                                     or, without save, with joblib.dump to artifacts/file
    ("close",)                     → ("ok", {"max_rss_kb": int}) and the process ends
    any request raising            → ("error", {"type", "message", "line", "function", "code"})
    user code calling sys.exit(N)  → ("exit", {"code": N, "line", "function"}) and the process ends with N

The user's prints go to stderr (fd 1 is pointed at fd 2), so nothing but the protocol travels on the pipe.
This module imports only the standard library at the top: it starts fast and loads pandas/numpy when the
solution does.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pickle
import sys
import traceback
from pathlib import Path
from typing import Any, BinaryIO


def _where(error: BaseException, solution: Path) -> dict[str, Any]:
    """The line of the solution file closest to where `error` was raised."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.filename and Path(frame.filename).resolve() == solution
    ]
    if isinstance(error, SyntaxError) and error.filename and Path(error.filename).resolve() == solution:
        return {"line": error.lineno, "function": "<module>", "code": (error.text or "").strip()}
    if not frames:
        return {"line": None, "function": None, "code": None}
    frame = frames[-1]
    return {"line": frame.lineno, "function": frame.name, "code": (frame.line or "").strip()}


def _import_solution(solution: Path) -> Any:
    sys.path.insert(0, str(solution.parent))
    spec = importlib.util.spec_from_file_location(solution.stem, solution)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {solution.name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[solution.stem] = module
    spec.loader.exec_module(module)
    return module


def _load(solution: Path, artifacts: str, class_name: str = "Model") -> tuple[Any, dict[str, Any]]:
    with contextlib.suppress(
        ImportError
    ):  # rows arrive as DataFrames: import pandas now, not in predict's time
        import pandas  # noqa: F401
    module = _import_solution(solution)
    model_class = getattr(module, class_name, None)
    if model_class is None:
        raise AttributeError(f"{solution.name} defines no class {class_name}")
    model = model_class()
    loader = getattr(model, "load", None)
    if callable(loader) or class_name == "Model":  # as in the service: a spare may need no artefacts
        model.load(Path(artifacts))
    classes = getattr(model, "classes_", None)
    methods = [name for name in ("predict", "predict_proba", "decision_function") if hasattr(model, name)]
    return model, {"classes": None if classes is None else list(classes), "methods": methods}


def _train(solution: Path, data_dir: str, artifacts: str, file: str) -> None:
    module = _import_solution(solution)
    folder = Path(artifacts)
    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(module, "retrain"):
        module.retrain(Path(data_dir), folder)
        return
    if not hasattr(module, "train"):
        raise AttributeError(
            f"{solution.name} defines neither train(data_dir) nor retrain(data_dir, artifacts)"
        )
    fitted = module.train(Path(data_dir))
    if hasattr(module, "save"):
        module.save(fitted, folder)
        return
    import joblib

    joblib.dump(fitted, folder / file)


def _predict(model: Any, frame: Any, want_scores: bool) -> tuple[Any, Any, str | None]:
    import numpy as np

    labels = np.asarray(model.predict(frame))
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.ravel()
    if not want_scores:
        return labels, None, None
    if hasattr(model, "predict_proba"):
        return labels, np.asarray(model.predict_proba(frame), dtype=float), "proba"
    if hasattr(model, "decision_function"):
        return labels, np.asarray(model.decision_function(frame), dtype=float), "decision"
    return labels, None, None


def _max_rss_kb() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _send(writer: BinaryIO, reply: tuple[Any, ...]) -> None:
    try:
        data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # a prediction that cannot be pickled is the model's problem, not ours
        data = pickle.dumps(
            (
                "error",
                {
                    "type": type(error).__name__,
                    "message": f"cannot send the result: {error}",
                    "line": None,
                    "function": None,
                    "code": None,
                },
            )
        )
    writer.write(data)
    writer.flush()


def serve(reader: BinaryIO, writer: BinaryIO, solution: Path) -> int:
    """Answer requests until 'close' or the end of the pipe; returns the process's exit code."""
    model: Any = None
    while True:
        try:
            request = pickle.load(reader)
        except EOFError:
            return 0
        kind = request[0]
        try:
            if kind == "load":
                model, info = _load(solution, *request[1:3])  # artifacts[, class name]
                reply: tuple[Any, ...] = ("ok", info)
            elif kind == "train":
                _train(solution, request[1], request[2], request[3])
                reply = ("ok", None)
            elif kind == "predict":
                reply = ("ok", _predict(model, request[1], request[2]))
            elif kind == "close":
                _send(writer, ("ok", {"max_rss_kb": _max_rss_kb()}))
                return 0
            else:
                reply = (
                    "error",
                    {
                        "type": "ProtocolError",
                        "message": f"unknown request {kind!r}",
                        "line": None,
                        "function": None,
                        "code": None,
                    },
                )
        except SystemExit as error:
            code = error.code if isinstance(error.code, int) else (0 if error.code is None else 1)
            _send(writer, ("exit", {"code": code, **_where(error, solution)}))
            return code
        except BaseException as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            reply = ("error", {"type": type(error).__name__, "message": message, **_where(error, solution)})
        _send(writer, reply)


def main(argv: list[str]) -> int:
    fd_in, fd_out, solution = int(argv[1]), int(argv[2]), Path(argv[3]).resolve()
    os.dup2(2, 1)  # the user's prints go to stderr, never into the protocol
    sys.stdout = sys.stderr
    with os.fdopen(fd_in, "rb") as reader, os.fdopen(fd_out, "wb") as writer:
        return serve(reader, writer, solution)


if __name__ == "__main__":
    status = main(sys.argv)
    sys.stderr.flush()
    os._exit(status)  # do not wait for threads the user's code may have left running
