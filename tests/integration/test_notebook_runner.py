"""Running notebooks in a real kernel: timeouts leave no process behind, failing cells are named, and
`mlship convert` refreshes a project without overwriting its code."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from mlship.adapters.jupyter import run_notebook
from mlship.adapters.jupyter_support import is_running
from mlship.errors import NotebookError

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def write_notebook(path: Path, *sources: str, kernel: str = "python3") -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))
    return path


def test_a_timeout_kills_the_kernel_and_every_process_it_started(tmp_path: Path) -> None:
    pids = tmp_path / "pids.txt"
    notebook = write_notebook(
        tmp_path / "nb" / "slow.ipynb",
        "import os, subprocess, sys, pathlib\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "detached = subprocess.Popen('sleep 600', shell=True, start_new_session=True)\n"
        f"pathlib.Path({str(pids)!r}).write_text(f'{{os.getpid()}} {{child.pid}} {{detached.pid}}')",
        "import time\ntime.sleep(600)",
    )
    started = time.monotonic()
    with pytest.raises(NotebookError) as raised, run_notebook(notebook, timeout_s=8, progress=False):
        pass
    assert time.monotonic() - started < 60
    message = raised.value.message
    assert "cell 2 (`import time`)" in message and "within 8 s" in message and "stopped" in message
    assert "--timeout" in (raised.value.hint or "")
    kernel, child, detached = (int(pid) for pid in pids.read_text().split())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(is_running(pid) for pid in (kernel, child, detached)):
        time.sleep(0.2)
    assert not [pid for pid in (kernel, child, detached) if is_running(pid)]


def test_a_failing_cell_is_named_with_its_first_line_and_error(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "bad.ipynb", "x = 1", "# parse the amount\nvalue = int('abc')")
    with pytest.raises(NotebookError) as raised, run_notebook(notebook, progress=False):
        pass
    assert raised.value.message == (
        "bad.ipynb: cell 2 (`value = int('abc')`) failed: "
        "ValueError: invalid literal for int() with base 10: 'abc'"
    )


def test_an_uninstalled_kernel_falls_back_to_this_python_and_says_so(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "k.ipynb", "import sys\nexecutable = sys.executable", kernel="conda-env-old-py"
    )
    with run_notebook(notebook, progress=False) as session:
        assert (
            session.kernel_note is not None and "'conda-env-old-py' is not installed" in session.kernel_note
        )
        assert session.executed == [0]


IRIS = (
    "from sklearn.datasets import load_iris\nfrom sklearn.model_selection import train_test_split\n"
    "from sklearn.tree import DecisionTreeClassifier",
    "X, y = load_iris(return_X_y=True, as_frame=True)\n"
    "X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)",
    "tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X_train, y_train)",
)


def mlship(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlship", *arguments], capture_output=True, text=True, timeout=600
    )


def test_convert_refreshes_a_project_and_keeps_its_code(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "nb" / "iris.ipynb", *IRIS)
    project = tmp_path / "iris-model"
    created = mlship("init", "--from-notebook", str(notebook), "--dir", str(project))
    assert created.returncode == 0, created.stderr
    solution = project / "solution.py"
    solution.write_text(solution.read_text() + "\n# my own change\n")

    again = mlship("init", "--from-notebook", str(notebook), "--dir", str(project))
    assert again.returncode == 2 and "solution.py" in again.stderr and "--force" in again.stderr
    assert "Traceback" not in again.stderr

    refreshed = mlship("convert", str(project), "--notebook", str(notebook), "--json")
    assert refreshed.returncode == 0, refreshed.stderr
    result = json.loads(refreshed.stdout)
    assert result["kept"] == ["solution.py", "tests/test_solution.py"]
    assert "model/model.joblib" in result["files"] and "tests/golden.json" in result["files"]
    assert solution.read_text().endswith("# my own change\n")
    assert mlship("test", str(project)).returncode == 0

    solution.write_text(solution.read_text().replace("'petal width (cm)'", "'petal width'"))
    broken = mlship("convert", str(project), "--notebook", str(notebook))
    assert broken.returncode == 1
    assert "existing solution.py does not work" in broken.stderr and "--force" in broken.stderr

    forced = mlship("convert", str(project), "--notebook", str(notebook), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "# my own change" not in solution.read_text()


def test_convert_needs_a_project(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "nb.ipynb", "x = 1")
    missing = mlship("convert", str(tmp_path / "nowhere"), "--notebook", str(notebook))
    assert missing.returncode == 2 and "not an mlship project" in missing.stderr


def test_a_daemonised_grandchild_is_stopped_too(tmp_path: Path) -> None:
    """A process that leaves the kernel's tree (setsid + its parent exits) still carries the kernel's mark."""
    pids = tmp_path / "daemon.txt"
    notebook = write_notebook(
        tmp_path / "nb" / "daemon.ipynb",
        "import subprocess, time\n"
        "subprocess.run(['sh', '-c', 'setsid sleep 6071 >/dev/null 2>&1 &'], check=True)\n"
        "time.sleep(0.5)\n"
        "ps = subprocess.run(['ps', '-eo', 'pid=,args='], capture_output=True, text=True).stdout\n"
        f"open({str(pids)!r}, 'w').write(' '.join(l.split()[0] for l in ps.splitlines() "
        "if l.split()[1:] == ['sleep', '6071']))",
    )
    with run_notebook(notebook, progress=False):
        daemons = [int(pid) for pid in pids.read_text().split()]
        assert daemons and all(is_running(pid) for pid in daemons)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(is_running(pid) for pid in daemons):
        time.sleep(0.2)
    assert not [pid for pid in daemons if is_running(pid)]
