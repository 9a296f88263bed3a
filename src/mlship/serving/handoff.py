"""What the supervisor (runner.py) hands each worker (worker.py): kept apart so neither imports the other."""

from __future__ import annotations

import json
import os
from typing import Any

from .settings import ServiceInfo, ServiceSettings

STARTUP_FAILED = 3  # a worker's exit code when the model could not be loaded: the supervisor stops too
INFO_ENV = "MLSHIP_SERVING_INFO"
RECYCLE_EXIT = 75  # a worker's exit code when it asks to be replaced (a stuck model call, see fallback.py)


def graceful_timeout(settings: ServiceSettings) -> float:
    """How long a worker waits for in-flight requests at shutdown (they end by ``timeout_s`` anyway)."""
    return settings.timeout_s + 2.0


def info_from_env() -> ServiceInfo | None:
    """What the supervisor told this worker to serve, if it did."""
    raw = os.environ.get(INFO_ENV)
    if not raw:
        return None
    data: Any = json.loads(raw)
    return ServiceInfo.from_dict(data, where=INFO_ENV)
