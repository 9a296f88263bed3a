"""Where mlship's templates live: inside the installed package, or at the top of a source checkout."""

from __future__ import annotations

from pathlib import Path


def templates_dir() -> Path:
    """The templates folder: `mlship/templates` in a wheel, `templates/` in a source checkout."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "templates"
    if installed.is_dir():
        return installed
    checkout = package.parent.parent / "templates"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"mlship's templates are missing (looked in {installed} and {checkout})")
