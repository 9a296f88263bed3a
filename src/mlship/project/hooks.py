"""`mlship hooks install`: a git pre-push hook that runs the release gate before every push."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from pydantic import BaseModel

from mlship.errors import UsageError
from mlship.project.config import load_project
from mlship.project.scaffold import render_template

MARKER = "Installed by `mlship hooks install`"


class HookResult(BaseModel):
    hook: Path
    project: Path


def install_pre_push(project_dir: Path, *, force: bool = False) -> HookResult:
    """Write .git/hooks/pre-push running `mlship test`; never replace a foreign hook silently."""
    project = load_project(project_dir)
    found = subprocess.run(
        ["git", "rev-parse", "--show-toplevel", "--git-path", "hooks"],
        cwd=project.root,
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        raise UsageError(f"{project.root} is not inside a git repository", hint="run 'git init' first")
    top, hooks = found.stdout.splitlines()[:2]
    hook = (project.root / hooks).resolve() if not os.path.isabs(hooks) else Path(hooks)
    hook = hook / "pre-push"
    if hook.exists() and MARKER not in hook.read_text(encoding="utf-8", errors="replace") and not force:
        raise UsageError(
            f"{hook} exists and was not written by mlship; nothing was changed",
            hint="add --force to replace it, or call 'mlship test' from your own hook",
        )
    relative = os.path.relpath(project.root, Path(top).resolve())
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(render_template("ci/pre-push", project=relative), encoding="utf-8")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return HookResult(hook=hook, project=project.root)
