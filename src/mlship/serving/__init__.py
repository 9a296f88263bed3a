"""mlship's model-serving runtime: the REST service every image runs (also ``mlship serve``).

Copied into each image as the standalone package ``mlship_serving``; it imports only its own dependencies
(starlette, uvicorn, orjson, prometheus_client, pandas, numpy, swagger_ui_bundle), never the rest of mlship.

    create_app(project_dir, settings) -> Starlette app     # in-process (tests, embedding)
    serve(project_dir, settings, host, port, workers) -> exit code
    python -m mlship_serving --project DIR [--host H] [--port P] [--workers N]

The names below load lazily so that the supervisor process (``python -m``) starts without pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings import BatchSettings, ServiceInfo, ServiceSettings, SettingsError

if TYPE_CHECKING:
    from .app import ROUTES, create_app
    from .loading import StartupError
    from .runner import serve

__all__ = [
    "ROUTES",
    "BatchSettings",
    "ServiceInfo",
    "ServiceSettings",
    "SettingsError",
    "StartupError",
    "create_app",
    "serve",
]

_LAZY = {"create_app": ".app", "ROUTES": ".app", "StartupError": ".loading", "serve": ".runner"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
