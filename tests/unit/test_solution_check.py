"""check_solution: solution.py is imported in a child interpreter before any image is built."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mlship.errors import BuildFailed, ExitCode
from mlship.gate.solution_check import check_solution
from mlship.project.config import Project, load_project
from tests.build_projects import LIGHT_SOLUTION, write_light_project


def project_with(root: Path, solution: str, files: dict[str, str] | None = None) -> Project:
    write_light_project(root, solution=textwrap.dedent(solution))
    for relative, content in (files or {}).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content))
    return load_project(root)


def failure(project: Project) -> BuildFailed:
    with pytest.raises(BuildFailed) as raised:
        check_solution(project, timeout_s=30)
    assert raised.value.exit_code == ExitCode.BUILD_FAILED
    return raised.value


def test_a_valid_solution_passes_with_no_local_modules(tmp_path: Path) -> None:
    assert check_solution(project_with(tmp_path, LIGHT_SOLUTION)) == []


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    error = failure(project_with(tmp_path, "import os\n\nclass Model(:\n    pass\n"))
    assert error.message.startswith("solution.py line 3: SyntaxError")
    assert "nothing was sent to the container engine" in (error.hint or "")


def test_a_missing_module_names_the_import_line(tmp_path: Path) -> None:
    error = failure(project_with(tmp_path, "import os\nimport json\nimport xgboost_not_installed_here\n"))
    assert error.message.startswith(
        "solution.py line 3: ModuleNotFoundError: No module named 'xgboost_not_installed_here'"
    )
    assert "`import xgboost_not_installed_here`" in error.message


def test_an_error_inside_a_local_module_names_that_module(tmp_path: Path) -> None:
    project = project_with(
        tmp_path, "from features import scale\n" + LIGHT_SOLUTION, {"features.py": "X = 1\nY = 1 / 0\n"}
    )
    error = failure(project)
    assert error.message.startswith("features.py line 2: ZeroDivisionError")


def test_no_model_class(tmp_path: Path) -> None:
    error = failure(project_with(tmp_path, "class Predictor:\n    pass\n"))
    assert error.message == "solution.py: missing Model: defines no class Model"


def test_a_model_without_predict(tmp_path: Path) -> None:
    error = failure(project_with(tmp_path, "class Model:\n    def load(self, artifacts):\n        pass\n"))
    assert error.message == "solution.py: incomplete Model: class Model has no predict method"


def test_sys_exit_at_import(tmp_path: Path) -> None:
    error = failure(project_with(tmp_path, "import sys\nprint('training...')\nsys.exit(2)\n"))
    assert error.message.startswith("solution.py line 3: SystemExit: 2")


def test_a_crash_of_the_interpreter_at_import(tmp_path: Path) -> None:
    error = failure(project_with(tmp_path, "import os\nos._exit(9)\n"))
    assert "importing it ended the interpreter (exit code 9)" in error.message


def test_an_import_that_takes_too_long(tmp_path: Path) -> None:
    project = project_with(tmp_path, "import time\ntime.sleep(30)\n")
    with pytest.raises(BuildFailed, match="importing it took longer than 1 s"):
        check_solution(project, timeout_s=1)


def test_local_modules_and_packages_are_found(tmp_path: Path) -> None:
    project = project_with(
        tmp_path,
        "import features\nfrom helpers import tools\n" + LIGHT_SOLUTION,
        {
            "features.py": "X = 1\n",
            "helpers/__init__.py": "",
            "helpers/tools.py": "Y = 2\n",
            "helpers/lazy.py": "Z = 3  # imported only at predict time\n",
            "unrelated.py": "raise RuntimeError('never imported')\n",
        },
    )
    assert check_solution(project) == [
        "features.py",
        "helpers/__init__.py",
        "helpers/lazy.py",
        "helpers/tools.py",
    ]


def test_modules_from_a_virtualenv_inside_the_project_are_not_local(tmp_path: Path) -> None:
    site = ".venv/lib/python3.11/site-packages"
    project = project_with(
        tmp_path,
        "import sys, pathlib\n"
        f"sys.path.insert(0, str(pathlib.Path(__file__).parent / '{site}'))\n"
        "import vendored_thing\n" + LIGHT_SOLUTION,
    )
    (tmp_path / site).mkdir(parents=True)
    (tmp_path / site / "vendored_thing.py").write_text("V = 1\n")
    assert check_solution(project) == []


def test_prints_at_import_do_not_break_the_check(tmp_path: Path) -> None:
    project = project_with(tmp_path, "print('{\"ok\": false}')\n" + LIGHT_SOLUTION)
    assert check_solution(project) == []
