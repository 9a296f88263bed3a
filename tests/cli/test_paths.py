"""Paths in mlship.yaml that leave the project are refused by `mlship test` (exit 3, one message naming the
field), whether written as `../`, as an absolute path, or hidden behind a symlink inside the project.

Each refused path points at a *working* copy of the file it replaces, so that without the check
`mlship test` would pass (exit 0): the tests fail if the refusal is removed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlship.cli import app
from tests.gate_projects import make_project, mlship_yaml

# field in mlship.yaml → (where the template keeps it, the YAML written for a given value)
FIELDS: dict[str, tuple[str, Callable[[str], str]]] = {
    "model.solution": (
        "solution.py",
        lambda value: mlship_yaml().replace("solution: solution.py", f"solution: '{value}'"),
    ),
    "model.artifacts": (
        "model",
        lambda value: mlship_yaml().replace("artifacts: model/", f"artifacts: '{value}'"),
    ),
    "schema": (
        "schema.json",
        lambda value: mlship_yaml().replace("schema: schema.json", f"schema: '{value}'"),
    ),
    "evaluation.data": ("data/test.csv", lambda value: mlship_yaml(data=f"'{value}'")),
}


def _move_outside(project: Path, relative: str, outside: Path) -> Path:
    """Move the project's file (or folder) out of the project; return where it now is."""
    target = outside / Path(relative).name
    outside.mkdir(parents=True, exist_ok=True)
    shutil.move(str(project / relative), target)
    return target


def _relative_escape(project: Path, moved: Path) -> str:
    return os.path.relpath(moved, project)


def _absolute(project: Path, moved: Path) -> str:
    return str(moved)


def _symlink_inside(project: Path, moved: Path) -> str:
    link = project / f"linked-{moved.name}"
    link.symlink_to(moved, target_is_directory=moved.is_dir())
    return link.name


def _nested_escape(project: Path, moved: Path) -> str:
    return "data/../../" + _relative_escape(project, moved)


STYLES = {
    "dotdot": _relative_escape,
    "absolute": _absolute,
    "symlink": _symlink_inside,
    "nested-dotdot": _nested_escape,
}


def _test(runner: CliRunner, project: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["test", str(project), "--skip-tests"])
    return result.exit_code, result.output


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("field", sorted(FIELDS))
def test_a_path_leaving_the_project_is_refused_naming_the_field(
    runner: CliRunner, tmp_path: Path, field: str, style: str
) -> None:
    project = make_project(tmp_path / "project")
    relative, render = FIELDS[field]
    moved = _move_outside(project, relative, tmp_path / "outside")
    value = STYLES[style](project, moved)
    (project / "mlship.yaml").write_text(render(value), encoding="utf-8")

    code, output = _test(runner, project)

    assert code == 3, output
    flat = " ".join(output.split())
    assert f"mlship.yaml {field}: '{value}' is outside the project folder" in flat
    assert "hint: keep every file the project uses inside its folder" in flat
    assert "Traceback" not in output
    assert "gate passed" not in output


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_the_same_file_inside_the_project_passes(runner: CliRunner, tmp_path: Path, field: str) -> None:
    """The control: the moved-out files work, so only the location made the refusal above."""
    project = make_project(tmp_path / "project")
    relative, render = FIELDS[field]
    moved = _move_outside(project, relative, tmp_path / "outside")
    inside = project / "elsewhere" / moved.name
    inside.parent.mkdir()
    shutil.move(str(moved), inside)
    link = project / f"linked-{moved.name}"
    link.symlink_to(inside, target_is_directory=inside.is_dir())
    for value in (f"elsewhere/{moved.name}", f"data/../elsewhere/{moved.name}", link.name, str(inside)):
        (project / "mlship.yaml").write_text(render(value), encoding="utf-8")
        code, output = _test(runner, project)
        assert code == 0, f"{field}: {value}\n{output}"
        assert "gate passed" in output


def test_a_symlinked_project_folder_is_not_mistaken_for_leaving_it(runner: CliRunner, tmp_path: Path) -> None:
    """Opening the project through a symlink to it: its files are inside, whatever the spelling."""
    project = make_project(tmp_path / "project")
    alias = tmp_path / "alias"
    alias.symlink_to(project, target_is_directory=True)
    code, output = _test(runner, alias)
    assert code == 0, output
