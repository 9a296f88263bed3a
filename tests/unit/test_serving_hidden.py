"""serving/hidden.py and build/serve.py's choice: packages mlship brings but the project does not require
are hidden from `mlship serve`'s workers, as the image will not have them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mlship.build.serve import HIDE_ENV, hidden_modules
from mlship.project.config import load_project
from tests.build_projects import write_light_project


def run(code: str, hide: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, HIDE_ENV: hide}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_a_hidden_package_is_not_importable_and_pandas_works_without_it() -> None:
    code = (
        "import mlship.serving.hidden, sys\n"
        "import pandas\n"
        "print('pyarrow' in sys.modules, pandas.DataFrame({'a': ['x']})['a'].iloc[0])\n"
        "try:\n    import pyarrow.parquet\nexcept ModuleNotFoundError as e:\n    print(e)\n"
    )
    hidden = run(code, "pyarrow")
    assert hidden.returncode == 0, hidden.stderr
    first, second = hidden.stdout.splitlines()
    assert first == "False x"
    assert "No module named 'pyarrow'" in second and "requirements.in" in second
    shown = run("import mlship.serving.hidden, pyarrow; print('ok')", "")
    assert shown.stdout.strip() == "ok", shown.stderr


def test_hidden_unless_requirements_in_names_it(tmp_path: Path) -> None:
    project_dir = write_light_project(tmp_path / "p")
    assert hidden_modules(load_project(project_dir)) == ["pyarrow"]
    (project_dir / "requirements.in").write_text("pandas==3.1\nPyArrow>=14  # parquet in predict\n")
    assert hidden_modules(load_project(project_dir)) == []
