"""The user's Model in a child process: predictions, and every way user code can fail, contained."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np  # noqa: TID253 - tests build data frames directly
import pandas as pd  # noqa: TID253
import pytest

from mlship.errors import TestsFailed
from mlship.gate.sandbox import ModelProcess
from tests.gate_projects import FEATURES, GOOD_SOLUTION, line_of, make_frame, make_project, solution_with


def _process(root: Path, source: str, timeout_s: float = 30) -> ModelProcess:
    (root / "solution.py").write_text(source)
    (root / "model").mkdir(exist_ok=True)
    return ModelProcess(root / "solution.py", root / "model", timeout_s=timeout_s)


def _rows(count: int = 5) -> pd.DataFrame:
    return make_frame(count, seed=3)[FEATURES]


def test_predicts_labels_and_probabilities_in_the_child(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    rows = _rows(40)
    with ModelProcess(project / "solution.py", project / "model", timeout_s=30) as model:
        assert model.classes == [0, 1]
        assert model.methods == ["predict", "predict_proba"]
        result = model.predict(rows, scores=True)
        only_labels = model.predict(rows, scores=False)
    assert result.labels.shape == (40,) and set(result.labels) <= {0, 1}
    assert result.score_kind == "proba" and result.scores is not None and result.scores.shape == (40, 2)
    np.testing.assert_allclose(result.scores.sum(axis=1), 1.0)
    np.testing.assert_array_equal(only_labels.labels, result.labels)
    assert only_labels.scores is None
    assert model.stats.max_rss_kb is not None and model.stats.max_rss_kb > 10_000


def test_user_prints_do_not_disturb_the_protocol(tmp_path: Path) -> None:
    source = solution_with('print("predicting", rows.shape); print("x" * 100000)', load_body='print("hello")')
    with _process(tmp_path, source) as model:
        assert list(model.predict(_rows(3), scores=False).labels) == [0, 0, 0]


def test_decision_function_when_there_is_no_predict_proba(tmp_path: Path) -> None:
    source = (
        "import numpy as np\nclass Model:\n"
        "    def load(self, artifacts):\n        self.classes_ = ['a', 'b']\n"
        "    def predict(self, rows):\n        return np.where(rows['amount'] > 300, 'b', 'a')\n"
        "    def decision_function(self, rows):\n        return rows['amount'].to_numpy() - 300\n"
    )
    with _process(tmp_path, source) as model:
        result = model.predict(_rows(10), scores=True)
    assert result.score_kind == "decision" and result.scores is not None and result.scores.shape == (10,)
    assert model.classes == ["a", "b"]


def test_a_raise_in_predict_names_solution_py_the_line_and_the_exception(tmp_path: Path) -> None:
    source = solution_with('raise ValueError("amount must be positive")')
    with _process(tmp_path, source) as model, pytest.raises(TestsFailed) as raised:
        model.predict(_rows(), scores=False)
    line = line_of(source, "raise ValueError")
    assert raised.value.message == (
        f"solution.py line {line} in predict: ValueError: amount must be positive (during predict)"
    )
    assert "raise ValueError" in (raised.value.hint or "")


def test_a_raise_deep_inside_a_library_names_the_users_line(tmp_path: Path) -> None:
    source = solution_with('return rows["no_such_column"]')
    with _process(tmp_path, source) as model, pytest.raises(TestsFailed) as raised:
        model.predict(_rows(), scores=False)
    assert raised.value.message.startswith(
        f"solution.py line {line_of(source, 'no_such_column')} in predict: KeyError"
    )


def test_a_raise_in_load_and_a_syntax_error(tmp_path: Path) -> None:
    source = solution_with("pass", load_body='raise FileNotFoundError("model.joblib")')
    with pytest.raises(
        TestsFailed,
        match=rf"solution.py line {line_of(source, 'FileNotFound')} in load: "
        r"FileNotFoundError: model.joblib \(during load\)",
    ):
        _process(tmp_path, source).__enter__()
    broken = "class Model:\n    def load(self, artifacts):\n        return (\n\n"
    with pytest.raises(TestsFailed, match=r"solution.py line \d+ in <module>: SyntaxError"):
        _process(tmp_path, broken).__enter__()


def test_a_solution_without_model(tmp_path: Path) -> None:
    with pytest.raises(TestsFailed, match="solution.py defines no class Model"):
        _process(tmp_path, "x = 1\n").__enter__()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "sys.exit(3)",
            r"the model process exited with code 3 during predict: solution.py line \d+ in predict "
            r"called sys.exit\(3\)",
        ),
        ("os._exit(7)", "the model process exited with code 7 during predict"),
        (
            "import ctypes; ctypes.string_at(0)",
            "the model process was killed by signal SIGSEGV during predict",
        ),
    ],
)
def test_exits_and_crashes_become_tests_failed(tmp_path: Path, body: str, expected: str) -> None:
    with _process(tmp_path, solution_with(body)) as model, pytest.raises(TestsFailed, match=expected):
        model.predict(_rows(), scores=False)


def test_sys_exit_during_load(tmp_path: Path) -> None:
    with pytest.raises(TestsFailed, match="exited with code 2 during load"):
        _process(tmp_path, solution_with("pass", load_body="sys.exit(2)")).__enter__()


def test_a_hang_is_stopped_after_timeout_with_its_whole_process_tree(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    source = solution_with(
        f"import subprocess; p = subprocess.Popen(['sleep', '300']); "
        f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(300)"
    )
    started = time.monotonic()
    with _process(tmp_path, source, timeout_s=5) as model, pytest.raises(TestsFailed) as raised:
        model.predict(_rows(), scores=False)
    elapsed = time.monotonic() - started
    assert raised.value.message.startswith("predict took longer than timeout_s=5")
    assert "evaluation.timeout_s" in (raised.value.hint or "")
    assert elapsed < 20
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def test_a_wrong_number_of_predictions(tmp_path: Path) -> None:
    source = "class Model:\n    def load(self, artifacts): pass\n    def predict(self, rows): return [1, 2]\n"
    with (
        _process(tmp_path, source) as model,
        pytest.raises(TestsFailed, match="returned 2 values for 5 rows"),
    ):
        model.predict(_rows(5), scores=False)


def test_the_child_is_gone_after_close(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", solution=GOOD_SOLUTION)
    model = ModelProcess(project / "solution.py", project / "model", timeout_s=30)
    with model:
        process = model._process
        assert process is not None and process.poll() is None
    assert process.poll() is not None
