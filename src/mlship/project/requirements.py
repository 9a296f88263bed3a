"""The project's requirements.in, read line by line as pip reads it (comments and options skipped)."""

from __future__ import annotations

from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement


def read_requirements_in(path: Path) -> list[tuple[str, Requirement | None]]:
    """Each requirement line of `path` (comment stripped) with its parsed form, None when it does not parse.
    A missing file has none."""
    if not path.is_file():
        return []
    found: list[tuple[str, Requirement | None]] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            found.append((line, Requirement(line)))
        except InvalidRequirement:
            found.append((line, None))
    return found
