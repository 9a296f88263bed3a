"""Get predictions from the user's `Model` without letting its crashes, hangs or exits reach mlship.

`ModelProcess` runs solution.py in a child interpreter (`mlship.gate.sandbox_child`), in its own process
group, talking over a pair of pipes. Every call (load, each predict) is bounded by `timeout_s`; on expiry
the whole process group is killed. What the user's code does wrong becomes a `TestsFailed` naming
solution.py and the line. Anything else that can answer `predict(rows)` (the service over HTTP, in the
deploy step) fits the `Predictor` protocol, and `mlship.gate.evaluate` scores any of them the same way."""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

from mlship.errors import TestsFailed

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Phase = Literal["load", "predict", "train", "close"]
ScoreKind = Literal["proba", "decision"]


@dataclass
class Predictions:
    """What a model returned for one chunk: labels (or values), and class scores when asked for."""

    labels: np.ndarray[Any, Any]
    scores: np.ndarray[Any, Any] | None = None
    score_kind: ScoreKind | None = None


class Predictor(Protocol):
    """Anything that predicts a DataFrame of input rows: the local model process, or a running service."""

    @property
    def classes(self) -> list[Any] | None:
        """The model's `classes_` (the column order of predict_proba), if it has them."""

    def predict(self, rows: pd.DataFrame, *, scores: bool) -> Predictions:
        """Predict every row; with `scores`, also predict_proba (or decision_function) when available."""


@dataclass
class ModelProcessStats:
    """Figures about the child process, for benchmarks."""

    max_rss_kb: int | None


class ModelProcess:
    """The user's `Model` (solution.py + artifacts) loaded in a child process.

    Use as a context manager: entering starts the child and calls `Model().load(artifacts)`, leaving ends it.
    """

    def __init__(
        self,
        solution: Path,
        artifacts: Path,
        *,
        timeout_s: float,
        cwd: Path | None = None,
        model_class: str = "Model",
        load: bool = True,
    ) -> None:
        self.load_on_start = load
        self.solution = Path(solution).resolve()
        self.model_class = model_class  # another class of solution.py: the spare (fallback.model)
        self.artifacts = Path(artifacts).resolve()
        self.timeout_s = timeout_s
        self.cwd = Path(cwd) if cwd is not None else self.solution.parent
        self._classes: list[Any] | None = None
        self.methods: list[str] = []
        self.stats = ModelProcessStats(max_rss_kb=None)
        self._process: subprocess.Popen[bytes] | None = None
        self._writer: IO[bytes] | None = None
        self._reader: IO[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._timed_out = False

    @property
    def classes(self) -> list[Any] | None:
        return self._classes

    # --- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the child and load the model (bounded by timeout_s)."""
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        self._stderr = tempfile.TemporaryFile(prefix="mlship-model-")  # noqa: SIM115 - closed in close()
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mlship.gate.sandbox_child",
                    str(to_child_r),
                    str(from_child_w),
                    str(self.solution),
                ],
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=self._stderr,
                stderr=self._stderr,
                pass_fds=(to_child_r, from_child_w),
                start_new_session=True,
            )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._writer = os.fdopen(to_child_w, "wb")
        self._reader = os.fdopen(from_child_r, "rb")
        if not self.load_on_start:
            return
        info = self._call("load", ("load", str(self.artifacts), self.model_class))
        self._classes = info["classes"]
        self.methods = list(info["methods"])

    def predict(self, rows: pd.DataFrame, *, scores: bool) -> Predictions:
        """Predict one chunk in the child; raise TestsFailed if the user's code fails."""
        labels, values, kind = self._call("predict", ("predict", rows, scores))
        if len(labels) != len(rows):
            raise TestsFailed(
                f"{self.solution.name}: predict returned {len(labels)} values for {len(rows)} rows",
                hint="predict must return one prediction per input row",
            )
        if values is not None and len(values) != len(rows):
            raise TestsFailed(
                f"{self.solution.name}: predict_proba/decision_function returned {len(values)} rows "
                f"for {len(rows)} input rows",
                hint="return one row of scores per input row",
            )
        return Predictions(labels=labels, scores=values, score_kind=kind)

    def train(self, data_dir: Path, file: str) -> None:
        """Run solution.py's retrain(data_dir, artifacts), or train(data_dir) and save what it returns into
        the artefacts folder (save(model, artifacts), else joblib to artifacts/file); bounded by timeout_s."""
        self._call("train", ("train", str(data_dir), str(self.artifacts), file))

    def close(self) -> None:
        """Ask the child to finish (collecting its peak memory), and make sure it is gone."""
        process = self._process
        if process is not None and process.poll() is None and self._writer is not None:
            with contextlib.suppress(TestsFailed):
                self.stats = ModelProcessStats(**self._call("close", ("close",)))
        self._kill()
        for stream in (self._writer, self._reader, self._stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._writer = self._reader = self._stderr = None
        self._process = None

    def __enter__(self) -> ModelProcess:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- one request, bounded --------------------------------------------------------------------------

    def _kill(self) -> None:
        process = self._process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()

    def _on_timeout(self) -> None:
        self._timed_out = True
        self._kill()

    def _call(self, phase: Phase, request: tuple[Any, ...]) -> Any:
        if self._writer is None or self._reader is None:
            raise TestsFailed(f"the model process is not running (during {phase})")
        self._timed_out = False
        watchdog = threading.Timer(self.timeout_s, self._on_timeout)
        watchdog.daemon = True
        watchdog.start()
        try:
            pickle.dump(request, self._writer, protocol=pickle.HIGHEST_PROTOCOL)
            self._writer.flush()
            reply = pickle.load(self._reader)  # noqa: S301 - our own child process, running the user's code
        except (EOFError, OSError, pickle.UnpicklingError):
            reply = None
        finally:
            watchdog.cancel()
        if self._timed_out:
            self._kill()
            raise TestsFailed(
                f"{phase} took longer than timeout_s={self.timeout_s:g} ({self.solution.name}); the model "
                "process was stopped",
                hint="make the model faster, or raise evaluation.timeout_s in mlship.yaml",
            )
        if reply is None:
            raise self._exited(phase, None)
        status, payload = reply
        if status == "ok":
            return payload
        if status == "exit":
            raise self._exited(phase, payload)
        raise self._user_error(phase, payload)

    def _location(self, payload: dict[str, Any]) -> str:
        line = payload.get("line")
        if line is None:
            return self.solution.name
        function = payload.get("function")
        return f"{self.solution.name} line {line}" + (f" in {function}" if function else "")

    def _user_error(self, phase: Phase, payload: dict[str, Any]) -> TestsFailed:
        message = f": {payload['message']}" if payload.get("message") else ""
        code = f"line {payload['line']} is `{payload['code']}`; " if payload.get("code") else ""
        return TestsFailed(
            f"{self._location(payload)}: {payload['type']}{message} (during {phase})",
            hint=f"{code}fix the model code in {self.solution.name} and run 'mlship test' again",
        )

    def _exited(self, phase: Phase, payload: dict[str, Any] | None) -> TestsFailed:
        process = self._process
        code: int | None = None
        if process is not None:
            try:
                code = process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()
                code = process.returncode
        if payload is not None and code is None:
            code = payload.get("code")
        if code is not None and code < 0:
            how = f"was killed by signal {signal.Signals(-code).name}"
        else:
            how = f"exited with code {code}"
        where = (
            f": {self._location(payload)} called sys.exit({code})" if payload and payload.get("line") else ""
        )
        last = self._stderr_tail()
        return TestsFailed(
            f"the model process {how} during {phase}{where}",
            hint=f"{self.solution.name} must not exit or crash the interpreter"
            + (f"; its last output: {last}" if last else ""),
        )

    def _stderr_tail(self) -> str:
        stream = self._stderr
        if stream is None:
            return ""
        try:
            stream.seek(0, os.SEEK_END)
            size = stream.tell()
            stream.seek(max(0, size - 2000))
            lines = stream.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][:300] if lines else ""
