"""What the service is told at start: serving settings and the build's service.json, as plain dataclasses.

service.json (written by ``mlship build``, read here) holds::

    {"name": "fraud-detector", "version": "v3", "artifacts": "model/", "solution": "solution.py",
     "schema": "schema.json",
     "serving": {"port": 8080, "workers": "auto", "max_body_mb": 10, "timeout_s": 5, "max_batch_rows": 10000,
                 "max_concurrency": 256, "batching": {"max_size": 64, "max_wait_ms": 2.0},
                 "log_inputs": false},
     "fallback": {"model": "Spare", "deadline_ms": 200, "failures": 5, "window_s": 30, "cooldown_s": 10,
                  "successes": 3, "recycle_after_s": null},
     "artifact_sha256": {"model/model.joblib": "<sha256 hex>"},
     "example": {"amount": 45.0, "channel": "web"}}

Paths are relative to the folder that holds service.json; ``artifact_sha256`` keys are too.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

SERVICE_FILE = "service.json"


class SettingsError(ValueError):
    """service.json or a serving setting is missing, malformed or out of range (the message names it)."""


def _number(
    source: Mapping[str, Any],
    key: str,
    default: float,
    where: str,
    *,
    minimum: float,
    maximum: float | None = None,
    integer: bool = False,
    exclusive: bool = False,
) -> Any:
    value = source.get(key, default)
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise SettingsError(
            f"{where}.{key}: expected {'an integer' if integer else 'a number'}, got {value!r}"
        )
    too_small = value <= minimum if exclusive else value < minimum
    if too_small or (maximum is not None and value > maximum):
        bound = f"> {minimum}" if exclusive else f">= {minimum}"
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise SettingsError(f"{where}.{key}: must be {bound}{upper}, got {value!r}")
    return value


AUTO: Literal["auto"] = "auto"
MAX_AUTO_WORKERS = 8  # "auto" on a big host without a CPU limit: each worker holds its own model copy


def cpu_affinity() -> set[int]:
    """The cores this process may run on (empty where the platform cannot say)."""
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return set()


def usable_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this process may use: its CPU affinity, capped by a cgroup CPU limit (a container's)."""
    cpus = len(cpu_affinity()) or os.cpu_count() or 1
    quota = _cgroup_cpu_quota(cgroup)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def _cgroup_cpu_quota(cgroup: Path) -> float | None:
    """The cgroup CPU limit in cores (v2 ``cpu.max``, else v1 ``cfs_quota_us``), or None when unlimited."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us


@dataclass(frozen=True)
class BatchSettings:
    """Micro-batching: at most ``max_size`` rows per model call, waiting at most ``max_wait_ms`` for more."""

    max_size: int = 64
    max_wait_ms: float = 2.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "serving.batching") -> BatchSettings:
        """Build from a mapping (missing keys take their defaults); raise SettingsError naming a bad field."""
        _reject_unknown(data, cls, where)
        return cls(
            max_size=_number(data, "max_size", cls.max_size, where, minimum=1, maximum=4096, integer=True),
            max_wait_ms=float(_number(data, "max_wait_ms", cls.max_wait_ms, where, minimum=0, maximum=1000)),
        )


@dataclass(frozen=True)
class ServiceSettings:
    """The ``serving`` section of mlship.yaml / service.json (fields of ``mlship.project.config.Serving``)."""

    port: int = 8080
    workers: int | Literal["auto"] = AUTO  # auto: one per usable core (see worker_count)
    max_body_mb: float = 10.0
    timeout_s: float = 5.0
    max_batch_rows: int = 10_000
    max_concurrency: int = 256
    batching: BatchSettings = field(default_factory=BatchSettings)
    log_inputs: bool = False

    @classmethod
    def default(cls) -> ServiceSettings:
        """The defaults, equal to an mlship.yaml without a ``serving`` section."""
        return cls()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "serving") -> ServiceSettings:
        """Build from a mapping such as ``Serving.model_dump()``; missing keys take their defaults."""
        if not isinstance(data, Mapping):
            raise SettingsError(f"{where}: expected an object, got {type(data).__name__}")
        _reject_unknown(data, cls, where)
        batching = data.get("batching", {})
        if not isinstance(batching, Mapping):
            raise SettingsError(f"{where}.batching: expected an object, got {type(batching).__name__}")
        log_inputs = data.get("log_inputs", False)
        if not isinstance(log_inputs, bool):
            raise SettingsError(f"{where}.log_inputs: expected true or false, got {log_inputs!r}")
        return cls(
            port=_number(data, "port", cls.port, where, minimum=1, maximum=65535, integer=True),
            workers=_workers(data, where),
            max_body_mb=float(
                _number(data, "max_body_mb", cls.max_body_mb, where, minimum=0, exclusive=True)
            ),
            timeout_s=float(_number(data, "timeout_s", cls.timeout_s, where, minimum=0, exclusive=True)),
            max_batch_rows=_number(
                data, "max_batch_rows", cls.max_batch_rows, where, minimum=1, integer=True
            ),
            max_concurrency=_number(
                data, "max_concurrency", cls.max_concurrency, where, minimum=1, integer=True
            ),
            batching=BatchSettings.from_dict(batching, f"{where}.batching"),
            log_inputs=log_inputs,
        )

    @classmethod
    def from_file(cls, path: Path | str) -> ServiceSettings:
        """Read the ``serving`` section of a service.json file."""
        return ServiceInfo.from_file(path).serving

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready data (the inverse of ``from_dict``)."""
        return {
            f.name: (getattr(self, f.name).__dict__.copy() if f.name == "batching" else getattr(self, f.name))
            for f in fields(self)
        }

    def with_overrides(self, **changes: Any) -> ServiceSettings:
        """A copy with some fields changed (e.g. ``port`` or ``workers`` from the command line)."""
        return replace(self, **changes)

    @property
    def worker_count(self) -> int:
        """``workers``, with ``auto`` resolved: one per usable core, at most MAX_AUTO_WORKERS."""
        if isinstance(self.workers, int):
            return self.workers
        return min(usable_cpus(), MAX_AUTO_WORKERS)

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)


def _workers(data: Mapping[str, Any], where: str) -> int | Literal["auto"]:
    if data.get("workers", AUTO) == AUTO:
        return AUTO
    try:
        count: int = _number(data, "workers", 1, where, minimum=1, maximum=64, integer=True)
    except SettingsError as error:
        raise SettingsError(f'{error} (or "{AUTO}": one per core)') from None
    return count


@dataclass(frozen=True)
class FallbackSettings:
    """The ``fallback`` section: a spare ``Model`` class of solution.py and when it answers instead.

    The spare answers when the main model raises, has not answered within ``deadline_ms``, or while the
    circuit breaker is open (``failures`` errors or timeouts within ``window_s`` open it; after
    ``cooldown_s`` one trial request goes to the main model; ``successes`` in a row close it again). A main
    call still running after ``recycle_after_s`` (default: ``serving.timeout_s``) gets its worker replaced.
    """

    model: str = "Spare"
    deadline_ms: float = 200.0
    failures: int = 5
    window_s: float = 30.0
    cooldown_s: float = 10.0
    successes: int = 3
    recycle_after_s: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "fallback") -> FallbackSettings:
        """Build from a mapping (missing keys take their defaults); raise SettingsError naming a bad field."""
        if not isinstance(data, Mapping):
            raise SettingsError(f"{where}: expected an object, got {type(data).__name__}")
        _reject_unknown(data, cls, where)
        model = data.get("model", cls.model)
        if not isinstance(model, str) or not model.isidentifier():
            raise SettingsError(f"{where}.model: expected a class name of solution.py, got {model!r}")
        recycle = data.get("recycle_after_s")
        return cls(
            model=model,
            deadline_ms=float(
                _number(data, "deadline_ms", cls.deadline_ms, where, minimum=0, exclusive=True)
            ),
            failures=_number(data, "failures", cls.failures, where, minimum=1, integer=True),
            window_s=float(_number(data, "window_s", cls.window_s, where, minimum=0, exclusive=True)),
            cooldown_s=float(_number(data, "cooldown_s", cls.cooldown_s, where, minimum=0)),
            successes=_number(data, "successes", cls.successes, where, minimum=1, integer=True),
            recycle_after_s=None
            if recycle is None
            else float(_number(data, "recycle_after_s", 0, where, minimum=0, exclusive=True)),
        )


@dataclass(frozen=True)
class ServiceInfo:
    """The whole of service.json: what to load and how to serve it."""

    name: str = "model"
    version: str = "dev"
    artifacts: str = "model/"
    solution: str = "solution.py"
    schema: str = "schema.json"
    serving: ServiceSettings = field(default_factory=ServiceSettings)
    artifact_sha256: dict[str, str] = field(default_factory=dict)
    example: dict[str, Any] | None = None
    fallback: FallbackSettings | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = SERVICE_FILE) -> ServiceInfo:
        """Validate service.json content; raise SettingsError naming the field."""
        if not isinstance(data, Mapping):
            raise SettingsError(f"{where}: expected a JSON object, got {type(data).__name__}")
        _reject_unknown(data, cls, where)
        strings: dict[str, str] = {}
        for key in ("name", "version", "artifacts", "solution", "schema"):
            value = data.get(key, getattr(cls, key))
            if not isinstance(value, str) or not value.strip():
                raise SettingsError(f"{where}.{key}: expected a non-empty string, got {value!r}")
            strings[key] = value
        hashes = data.get("artifact_sha256") or {}
        if not isinstance(hashes, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and len(v) == 64 for k, v in hashes.items()
        ):
            raise SettingsError(f"{where}.artifact_sha256: expected {{relative path: sha256 hex}}")
        example = data.get("example")
        if example is not None and not isinstance(example, Mapping):
            raise SettingsError(f"{where}.example: expected an object (one input row), got {example!r}")
        return cls(
            **strings,
            serving=ServiceSettings.from_dict(data.get("serving") or {}, f"{where}.serving"),
            artifact_sha256={k: v.lower() for k, v in hashes.items()},
            example=dict(example) if example is not None else None,
            fallback=None
            if data.get("fallback") is None
            else FallbackSettings.from_dict(data["fallback"], f"{where}.fallback"),
        )

    @classmethod
    def from_file(cls, path: Path | str) -> ServiceInfo:
        """Read and validate a service.json file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise SettingsError(f"{path}: not found") from error
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SettingsError(f"{path}: cannot be read as JSON: {error}") from error
        return cls.from_dict(data, where=str(path))

    def to_dict(self) -> dict[str, Any]:
        """service.json content for this service (the inverse of ``from_dict``)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["serving"] = self.serving.to_dict()
        data["artifact_sha256"] = dict(self.artifact_sha256)
        data["fallback"] = None if self.fallback is None else self.fallback.__dict__.copy()
        return data

    @classmethod
    def for_project(cls, project_dir: Path | str) -> ServiceInfo:
        """service.json from ``project_dir`` when it exists, else defaults named after the folder."""
        project_dir = Path(project_dir)
        if (project_dir / SERVICE_FILE).is_file():
            return cls.from_file(project_dir / SERVICE_FILE)
        return cls(name=project_dir.resolve().name or "model")


def _reject_unknown(data: Mapping[str, Any], kind: type, where: str) -> None:
    known = {f.name for f in fields(kind)}
    unknown = sorted(str(key) for key in data if key not in known)
    if unknown:
        raise SettingsError(
            f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
