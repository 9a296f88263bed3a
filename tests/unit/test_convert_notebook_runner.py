"""The pure parts of running a notebook: skipping installs, naming cells, hints, the temporary copy."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from mlship.adapters.jupyter import _failure_hint, first_line, strip_ansi
from mlship.adapters.jupyter_support import neutralise_installs, parent_inputs, stage_copy


def test_package_installs_are_not_run() -> None:
    source = (
        "!pip install xgboost\n%pip install -q lightgbm \\\n    catboost\nimport sys\n"
        "!{sys.executable} -m pip install shap\n!ls"
    )
    runnable, skipped = neutralise_installs(source)
    lines = runnable.splitlines()
    assert lines[0] == "pass  # mlship did not run: !pip install xgboost"
    assert lines[1].startswith("pass  #") and lines[2].strip().startswith("pass  #")
    assert lines[3] == "import sys"
    assert lines[4].startswith("pass  #")
    assert lines[5] == "!ls"
    assert skipped == [
        "!pip install xgboost",
        "%pip install -q lightgbm \\ catboost",
        "!{sys.executable} -m pip install shap",
    ]


def test_first_line_prefers_code_over_comments() -> None:
    assert first_line("\n# load the data\ndf = pd.read_csv('x.csv')\n") == "df = pd.read_csv('x.csv')"
    assert first_line("# only a comment") == "# only a comment"
    assert first_line("x = '" + "a" * 200 + "'").endswith("…")


def test_strip_ansi() -> None:
    assert strip_ansi("\x1b[0;31mValueError\x1b[0m: bad") == "ValueError: bad"


def test_hints_name_the_cause() -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("import pandas as pd\nimport sklearn")]
    old = _failure_hint(
        "TypeError", "__init__() got an unexpected keyword argument 'sparse'", notebook, [], []
    )
    assert "older version" in old and "pandas" in old
    missing = _failure_hint("FileNotFoundError", "[Errno 2] No such file", notebook, [], [])
    assert "temporary copy" in missing
    colab = _failure_hint("ModuleNotFoundError", "No module named 'google.colab'", notebook, [], [])
    assert "Colab" in colab
    earlier = _failure_hint(
        "ValueError", "Input X contains NaN", notebook, [], ["cell 3: ChainedAssignmentError"]
    )
    assert "cell 3: ChainedAssignmentError" in earlier


def test_parent_paths_are_mirrored_around_the_copy(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "x.csv").write_text("a\n1\n")
    (project / "notebooks" / "models").mkdir(parents=True)
    (project / "notebooks" / "models" / "old.pkl").write_text("old")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("df = pd.read_csv('../data/x.csv')\nmissing = '../nope.csv'")]
    path = project / "notebooks" / "nb.ipynb"
    path.write_text(json.dumps(notebook))
    assert parent_inputs(notebook, path.parent) == [(project / "data" / "x.csv").resolve()]
    root = tmp_path / "copy"
    workdir, warnings = stage_copy(path, notebook, root, exclude=[project / "notebooks" / "models"])
    assert workdir == root / "work" / "notebooks"
    assert (workdir / "../data/x.csv").resolve().read_text() == "a\n1\n"
    assert (workdir / "nb.ipynb").is_file()
    assert not (workdir / "models").exists()
    assert warnings == []
