"""`mlship init NAME`: render the project template, then train its model so the project works at once.

The only module that imports cookiecutter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pydantic import BaseModel

from mlship import __version__
from mlship.console import console
from mlship.errors import MlshipError, UsageError
from mlship.project.templates import templates_dir


class InitResult(BaseModel):
    """What `mlship init` made."""

    project: Path
    name: str
    files: list[str]
    next_steps: list[str]


def ensure_writable_target(target: Path, force: bool, protected: tuple[str, ...] = ()) -> None:
    """Refuse a non-empty folder unless forced; with --force, still name the files that would be replaced."""
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} exists and is not a folder", hint="choose another --dir")
    if target.is_dir() and any(target.iterdir()) and not force:
        clash = [name for name in protected if (target / name).exists()]
        listed = f" (it holds {', '.join(clash)})" if clash else ""
        raise UsageError(
            f"{target} is not empty{listed}; nothing was written",
            hint="choose an empty or new --dir, or add --force to overwrite mlship's files there",
        )


def _slug(name: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    if not slug:
        raise UsageError(f"'{name}' cannot be turned into an image name", hint="use letters, digits and '-'")
    return slug


def create_project(name: str, directory: Path | None = None, *, force: bool = False) -> InitResult:
    """Render templates/project into `directory` (default ./NAME), train the model and write schema.json."""
    from cookiecutter.main import cookiecutter

    slug = _slug(name)
    target = (directory or Path(slug)).resolve()
    ensure_writable_target(target, force, ("mlship.yaml", "solution.py", "tests"))
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    with tempfile.TemporaryDirectory(prefix="mlship-init-") as staging:
        console.print(f"[bold]Creating[/] {target}")
        rendered = Path(
            cookiecutter(
                str(templates_dir() / "project"),
                no_input=True,
                output_dir=staging,
                overwrite_if_exists=True,
                extra_context={
                    "project_name": name,
                    "project_slug": slug,
                    "python_version": python,
                    "mlship_version": __version__,
                },
            )
        )
        _train(rendered)
        _write_schema(rendered)
        write_ci_files(rendered, slug, python)
        target.mkdir(parents=True, exist_ok=True)
        files = _move_into(rendered, target)
    return InitResult(
        project=target,
        name=slug,
        files=files,
        next_steps=[f"cd {os.path.relpath(target)}", "mlship test", "mlship serve", "mlship deploy"],
    )


def _train(project: Path) -> None:
    with console.status("Training the template model (scikit-learn breast-cancer data, offline)…"):
        result = subprocess.run(
            [sys.executable, "solution.py"],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise MlshipError(
            f"training the template model failed: {tail[0]}",
            hint="check that scikit-learn, pandas and joblib are installed in this Python",
        )


def _write_schema(project: Path) -> None:
    import json

    import pandas as pd

    from mlship.project.schema import infer_schema

    train = pd.read_csv(project / "data" / "train.csv")
    schema = infer_schema(train.drop(columns=["label"]), train["label"], "binary")
    (project / "schema.json").write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")


def _move_into(rendered: Path, target: Path) -> list[str]:
    files = []
    for source in sorted(rendered.rglob("*")):
        if source.is_dir() or "__pycache__" in source.parts:
            continue
        relative = source.relative_to(rendered)
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), destination)
        files.append(relative.as_posix())
    return files


CI_FILES = {
    "github-workflow.yml": ".github/workflows/mlship.yml",
    "github-retrain.yml": ".github/workflows/mlship-retrain.yml",
    "gitlab-ci.yml": ".gitlab-ci.yml",
}


def render_template(relative: str, **context: str) -> str:
    """Render one of templates/ with StrictUndefined: a missing variable is an error, never a blank."""
    import jinja2

    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    return environment.from_string((templates_dir() / relative).read_text(encoding="utf-8")).render(**context)


def write_ci_files(project: Path, name: str, python: str) -> list[str]:
    """Write the GitHub Actions and GitLab CI jobs: the gate on pull requests, deploy on the main branch,
    and a scheduled retrain (guards → challenger vs live → deploy a blessed model)."""
    written = []
    for template, destination in CI_FILES.items():
        target = project / destination
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_template(f"ci/{template}", name=name, python=python), encoding="utf-8")
        written.append(destination)
    return written
