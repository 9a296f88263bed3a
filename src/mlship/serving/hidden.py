"""Packages hidden from the model in a worker of `mlship serve` (``MLSHIP_SERVE_HIDE_MODULES``, commas).

`mlship serve` runs in the developer's environment, which holds mlship's own dependencies; the image holds
only the project's frozen requirements. A package the project does not require is hidden here so that the
service behaves as the image will: importing it raises ModuleNotFoundError saying so. Imported first by
the worker, before pandas. Unset in images: nothing is hidden there.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

ENV = "MLSHIP_SERVE_HIDE_MODULES"


class _Hidden(importlib.abc.MetaPathFinder):
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (mlship serve hides it: the project's requirements.in does "
                "not name it, so the image will not have it; add it there if the model needs it)",
                name=fullname,
            )
        return None


def hide_from_environment() -> None:
    names = {name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip()}
    if names and not any(isinstance(finder, _Hidden) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Hidden(names))


hide_from_environment()
