"""project/imports.py: the local modules solution.py imports, read from the code, and the same answer as
the child import of `mlship build` (gate/solution_check.py) on the projects mlship writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlship.gate.solution_check import check_solution
from mlship.project.config import load_project
from mlship.project.imports import local_modules
from tests.build_projects import write_light_project


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_local_modules_are_followed_through_each_other_and_packages(tmp_path: Path) -> None:
    write(tmp_path / "solution.py", "import os\nimport helpers\nfrom features.encode import x\n")
    write(tmp_path / "helpers.py", "import numpy\nfrom . import nothing\n\ndef f():\n    import late\n")
    write(tmp_path / "late.py", "from shared import y\n")
    write(tmp_path / "shared.py", "")
    write(tmp_path / "features" / "__init__.py", "")
    write(tmp_path / "features" / "encode.py", "x = 1\n")
    write(tmp_path / "features" / "deep" / "more.py", "")
    write(tmp_path / "unused.py", "")
    write(tmp_path / ".venv" / "lib" / "helpers_copy.py", "")
    assert local_modules(tmp_path / "solution.py", tmp_path) == [
        "features/__init__.py",
        "features/deep/more.py",
        "features/encode.py",
        "helpers.py",
        "late.py",
        "shared.py",
    ]


def test_a_file_that_does_not_parse_is_a_syntax_error(tmp_path: Path) -> None:
    write(tmp_path / "solution.py", "import helpers\n")
    write(tmp_path / "helpers.py", "def broken(:\n")
    with pytest.raises(SyntaxError):
        local_modules(tmp_path / "solution.py", tmp_path)


def test_reading_agrees_with_the_child_import_on_a_project_with_a_helper(tmp_path: Path) -> None:
    solution = "import helpers\n\n\nclass Model:\n    def load(self, a):\n        pass\n\n" + (
        "    def predict(self, rows):\n        return helpers.f(rows)\n"
    )
    project_dir = write_light_project(tmp_path / "p", solution=solution)
    write(project_dir / "helpers.py", "def f(rows):\n    return [0] * len(rows)\n")
    project = load_project(project_dir)
    assert local_modules(project.solution_path, project.root) == check_solution(project) == ["helpers.py"]
