"""The service's shared state: contract, model, model thread, metrics, log and readiness."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import orjson

from .asgi import DUMPS_OPTIONS, safe_header_value
from .batching import ModelRunner
from .columns import SchemaError
from .contract import InputContract, InvalidRequest, TooManyRows
from .fallback import Fallback, WatchedModel, load_spare, spare_version
from .loading import LoadedModel, StartupError, load_model
from .logs import JsonLog
from .metrics import Metrics
from .openapi import as_openapi_30, build_openapi
from .settings import ServiceInfo

FatalHandler = Callable[[str], None]


class Service:
    """Everything the routes share: contract, model, runner, metrics, log and readiness."""

    def __init__(
        self,
        project_dir: Path,
        info: ServiceInfo,
        *,
        log_stream: TextIO | None = None,
        on_fatal: FatalHandler | None = None,
        on_ready: Callable[[], None] | None = None,
        on_recycle: Callable[[str], None] | None = None,
    ) -> None:
        self.project_dir = Path(project_dir)
        self.info = info
        self.settings = info.serving
        self.log = JsonLog(log_stream, model_version=info.version)
        self.contract = _load_contract(self.project_dir / info.schema, info.schema)
        target = self.contract.schema.get("target")
        target = target if isinstance(target, dict) else {}
        self.example = self.contract.example_row(info.example)
        document = build_openapi(self.contract, info, self.example)
        self.openapi = {"3.1": orjson.dumps(document), "3.0": orjson.dumps(as_openapi_30(document))}
        task = self.contract.schema.get("task")
        quantiles = (
            (target.get("observed") or {}).get("quantiles")
            if isinstance(target.get("observed"), dict)
            else None
        )
        edges = [float(v) for v in quantiles.values()] if isinstance(quantiles, dict) else None
        self.metrics = Metrics(info.name, info.version, task if isinstance(task, str) else None, edges)
        self.classes = target.get("classes") if isinstance(target.get("classes"), list) else None
        self.version_header = safe_header_value(info.version)
        self.model: LoadedModel | None = None
        self.runner: ModelRunner | None = None
        self.failure: str | None = None
        self.preloaded: LoadedModel | None = None  # loaded before the server started (extra workers)
        self.in_flight = 0
        self.spare: LoadedModel | None = None  # fallback.model, loaded with the main model
        self.fallback: Fallback | None = None  # set by start() when service.json has a fallback section
        self._on_fatal = on_fatal
        self._on_ready = on_ready
        self._on_recycle = on_recycle

    # --- start-up -------------------------------------------------------------------------------------------

    def load(self) -> LoadedModel:
        """Load the model and run the self-test on the example row; raise StartupError (blocking)."""
        model = load_model(self.project_dir, self.info, self.classes)
        spare = load_spare(self.project_dir, self.info, self.classes) if self.info.fallback else None
        try:
            rows = self.contract.validate(self.example, max_rows=1)
        except (InvalidRequest, TooManyRows) as error:
            raise StartupError(
                f"the example row does not satisfy {self.info.schema}: {error}; fix the example "
                "in service.json or schema.json"
            ) from error
        spare_name = self.info.fallback.model if self.info.fallback else ""
        for name, tested in (("", model), (f" of fallback.model {spare_name}", spare)):
            if tested is None:
                continue
            try:
                predictions, probabilities = tested.predict(self.contract.frame(rows))
                orjson.dumps({"p": predictions, "q": probabilities}, option=DUMPS_OPTIONS)
            except Exception as error:
                first = str(error).strip().splitlines()
                raise StartupError(
                    f"self-test prediction{name} on the example row failed: {type(error).__name__}"
                    f"{': ' + first[0] if first else ''}"
                ) from error
        comparable = spare is not None and None not in (spare.classes, model.classes)
        if comparable and spare is not None and spare.classes != model.classes:
            raise StartupError(
                f"fallback.model {spare_name} predicts classes {spare.classes}, "
                f"the main model {model.classes}: the spare must answer in the same classes"
            )
        self.spare = spare
        return model

    def start(self, model: LoadedModel, loop: asyncio.AbstractEventLoop) -> None:
        """On the event loop: start the model thread and declare the service ready."""
        batching = self.settings.batching
        self.model = model
        fallback = self.info.fallback
        if fallback is not None and self.spare is not None:
            model = WatchedModel(model)  # its thread's current call is timed (fallback.py)
            self.fallback = Fallback(
                fallback,
                self.spare,
                ModelRunner(
                    self.contract,
                    self.spare,
                    loop,
                    max_rows=batching.max_size,
                    max_wait_s=batching.max_wait_ms / 1000,
                    on_batch=self.metrics.observe_batch,
                ),
                spare_version(self.info, fallback),
                self.metrics.registry,
                self.settings.timeout_s,
                self._recycle,
            )
            self.fallback.watch(model, loop)
        self.runner = ModelRunner(
            self.contract,
            model,
            loop,
            max_rows=batching.max_size,
            max_wait_s=batching.max_wait_ms / 1000,
            on_batch=self.metrics.observe_batch,
        )
        self.log.info("ready", name=self.info.name, classes=model.classes, probabilities=model.has_proba)
        if self._on_ready is not None:
            self._on_ready()

    def fail(self, message: str) -> None:
        """Record a start-up failure: one log line, readiness stays 503, the runner is told to exit."""
        self.failure = message
        self.log.error("startup_failed", message=message)
        if self._on_fatal is not None:
            self._on_fatal(message)

    def load_in_background(self, loop: asyncio.AbstractEventLoop) -> None:
        """Thread target: load, then hand over to the loop (or fail)."""
        try:
            model = self.load()
        except StartupError as error:
            self.fail(str(error))
            return
        except BaseException as error:  # noqa: BLE001 - an unexpected failure must still be one clear line
            self.fail(f"loading the model failed: {type(error).__name__}: {error}")
            return
        loop.call_soon_threadsafe(self.start, model, loop)

    def _recycle(self, message: str) -> None:
        self.log.error("worker_recycle", message=message)
        if self._on_recycle is not None:
            self._on_recycle(message)

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
        if self.fallback is not None:
            self.fallback.close()


def _load_contract(path: Path, name: str) -> InputContract:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StartupError(f"{name}: not found in {path.parent}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StartupError(f"{name}: cannot be read as JSON: {error}") from None
    try:
        return InputContract.from_schema(schema)
    except SchemaError as error:
        raise StartupError(str(error).replace("schema.json", name, 1)) from None
