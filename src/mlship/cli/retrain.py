"""`mlship retrain`: placeholder registered so the command list stays whole (filled in below)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    return None
