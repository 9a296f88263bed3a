"""Every notebook of tests/data/notebooks reaches the outcome expected.yaml gives it, through the real CLI and
a real Jupyter kernel; every converted project then passes `mlship test`, imports under plain python without
training anything, retrains a model of the same kind with train(), and its golden tests catch a swapped
model. The notebooks' folder is byte-identical afterwards (some of them write into it).

The conversions and the checks run two at a time (the machine has two cores).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CORPUS = Path(__file__).resolve().parents[1] / "data" / "notebooks"
ALL: dict[str, dict[str, Any]] = yaml.safe_load((CORPUS / "expected.yaml").read_text())
# MLSHIP_CORPUS_ONLY=name,name runs part of the corpus (while working on the converter)
ONLY = [name for name in os.environ.get("MLSHIP_CORPUS_ONLY", "").split(",") if name]
EXPECTED = {name: spec for name, spec in ALL.items() if not ONLY or name in ONLY}
WORKERS = 2
TIMEOUT_S = 600


def folder_hashes(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)


# One interpreter per project for three checks, in this order: importing solution.py trains nothing and opens
# no window; train() retrains a model of the same kind (and score); the artifact swapped for the same kind of
# model fitted on other rows, then the project's tests run (the golden tests must fail).
CHECKS = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    calls = []
    def watch(frame, event, arg):
        if event == "call" and frame.f_code.co_name in ("fit", "fit_transform", "train", "show"):
            calls.append(frame.f_code.co_name)
    sys.path.insert(0, ".")
    sys.setprofile(watch)
    import solution
    sys.setprofile(None)
    facts = {"import": {"calls": calls, "pyplot": "matplotlib.pyplot" in sys.modules,
                        "model": hasattr(solution, "Model"), "train": hasattr(solution, "train")}}

    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.base import clone

    def kind(estimator):
        steps = getattr(estimator, "steps", None)
        return [type(estimator).__name__, *(type(step).__name__ for _, step in steps or [])]

    def score(estimator, rows, truth, regression):
        predicted = np.asarray(estimator.predict(solution.prepare(rows)))
        if regression:
            return float(1 - ((truth - predicted) ** 2).sum() / ((truth - truth.mean()) ** 2).sum())
        return float((predicted.astype(str) == truth.astype(str)).mean())

    model = solution.Model()
    model.load(Path("model"))
    retrained = solution.train()
    facts["retrain"] = {"shipped": kind(model.estimator), "retrained": kind(retrained)}
    schema = json.loads(Path("schema.json").read_text())
    if Path("data/test.csv").is_file():
        text = {c["name"]: str for c in schema["columns"] if c["type"] == "string"}
        data = pd.read_csv("data/test.csv", dtype=text)
        truth = data.pop(solution.TARGET)
        regression = schema["task"] == "regression"
        facts["retrain"]["shipped_score"] = score(model.estimator, data, truth.to_numpy(), regression)
        facts["retrain"]["retrained_score"] = score(retrained, data, truth.to_numpy(), regression)
        other = clone(model.estimator).fit(solution.prepare(data), truth)  # same kind, other rows
        joblib.dump(other, Path("model") / solution.MODEL_FILE)
        import pytest

        facts["golden_after_swap"] = int(pytest.main(["-q", "-p", "no:cacheprovider", "-rf", "tests"]))
    print(json.dumps(facts))
    """
)


@dataclass
class Outcome:
    name: str
    project: Path
    returncode: int
    payload: dict[str, Any]
    stderr: str
    checks: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)


def convert(name: str, workspace: Path) -> Outcome:
    project = workspace / name.replace("/", "_")
    notebook = CORPUS / f"{name}.ipynb"
    completed = run(
        [
            sys.executable,
            "-m",
            "mlship",
            "init",
            "--from-notebook",
            str(notebook),
            "--dir",
            str(project),
            "--json",
        ]
    )
    payload = json.loads(completed.stdout) if completed.stdout.strip() else {}
    outcome = Outcome(name, project, completed.returncode, payload, completed.stderr)
    if completed.returncode != 0:
        return outcome
    outcome.checks["mlship test"] = run([sys.executable, "-m", "mlship", "test", str(project)])
    outcome.checks["checks"] = run([sys.executable, "-c", CHECKS], cwd=project)
    return outcome


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workspace = tmp_path_factory.mktemp("corpus")
    before = folder_hashes(CORPUS)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        outcomes = dict(zip(EXPECTED, pool.map(lambda name: convert(name, workspace), EXPECTED), strict=True))
    return {"outcomes": outcomes, "before": before, "after": folder_hashes(CORPUS)}


def test_the_corpus_has_at_least_20_notebooks_each_with_an_expectation() -> None:
    notebooks = {path.relative_to(CORPUS).with_suffix("").as_posix() for path in CORPUS.rglob("*.ipynb")}
    assert len(notebooks) >= 20
    assert notebooks == set(ALL)


def test_the_notebook_folder_is_byte_identical(corpus: dict[str, Any]) -> None:
    assert corpus["after"] == corpus["before"]
    # …although some notebooks write into their folder (in the temporary copy they ran in)
    assert not (CORPUS / "models").exists() and not (CORPUS / "churn_model.pkl").exists()


@pytest.mark.parametrize("name", list(EXPECTED))
def test_outcome(corpus: dict[str, Any], name: str) -> None:
    expected = EXPECTED[name]
    outcome: Outcome = corpus["outcomes"][name]
    assert "Traceback" not in outcome.stderr, outcome.stderr
    if expected["outcome"] == "error":
        assert outcome.returncode == 1, outcome.stderr
        assert outcome.payload["kind"] == expected["error"]
        text = f"{outcome.payload['error']} {outcome.payload['hint']}"
        for word in expected["words"]:
            assert word in text, f"{word!r} not in {text!r}"
        assert "error:" in outcome.stderr and "hint:" in outcome.stderr
        assert not (outcome.project / "solution.py").exists()
        return
    assert outcome.returncode == 0, outcome.stderr
    result = outcome.payload
    assert result["variable"] == expected["model"]
    assert result["task"] == expected["task"]
    if "columns" in expected:
        assert result["features"] == [str(column) for column in expected["columns"]]
    for column in expected.get("columns_include", []):
        assert column in result["features"]
    if "heldout" in expected:
        shown = result["test_data"].split(":")[0] if result["test_data"] else None
        assert shown == expected["heldout"]
    for word in expected.get("reason", []):
        assert word in result["reason"]
    for word in expected.get("warnings", []):
        assert any(word in warning for warning in result["warnings"]), result["warnings"]
    for other in expected.get("others", []):
        assert other in [candidate["name"] for candidate in result["candidates"]]
    if "metrics" in expected:
        assert list(result["metrics"]) == expected["metrics"]
    solution = (outcome.project / "solution.py").read_text()
    for text in expected.get("solution_contains", []):
        assert text in solution
    for name_ in (
        "mlship.yaml",
        "solution.py",
        "schema.json",
        "requirements.in",
        "model/model.joblib",
        "tests/test_solution.py",
        "tests/golden.json",
        "README.md",
        ".gitignore",
        ".dockerignore",
    ):
        assert (outcome.project / name_).is_file(), name_
    assert "get_ipython" not in solution


def converted() -> list[str]:
    return [name for name, expected in EXPECTED.items() if expected["outcome"] == "converted"]


@pytest.mark.parametrize("name", converted())
def test_mlship_test_passes(corpus: dict[str, Any], name: str) -> None:
    outcome: Outcome = corpus["outcomes"][name]
    check = outcome.checks["mlship test"]
    if EXPECTED[name].get("heldout", "") is None:
        # no held-out rows in the notebook: the project asks for test data, clearly
        assert check.returncode == 1 and "data/test.csv does not exist" in check.stderr, check.stderr
        return
    assert check.returncode == 0, check.stdout + check.stderr
    assert "passed" in check.stderr


def facts(outcome: Outcome) -> dict[str, Any]:
    check = outcome.checks["checks"]
    assert check.returncode == 0, check.stderr[-3000:]
    return dict(json.loads(check.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("name", converted())
def test_solution_imports_under_plain_python_without_training(corpus: dict[str, Any], name: str) -> None:
    assert facts(corpus["outcomes"][name])["import"] == {
        "calls": [],
        "pyplot": False,
        "model": True,
        "train": True,
    }


@pytest.mark.parametrize("name", converted())
def test_train_reproduces_a_model_of_the_same_kind(corpus: dict[str, Any], name: str) -> None:
    result = facts(corpus["outcomes"][name])["retrain"]
    assert result["retrained"] == result["shipped"]
    if "shipped_score" in result:
        assert result["retrained_score"] >= result["shipped_score"] - 0.1, result


@pytest.mark.parametrize(
    "name", [name for name in converted() if EXPECTED[name].get("heldout", "") is not None]
)
def test_golden_tests_fail_when_the_model_is_swapped(corpus: dict[str, Any], name: str) -> None:
    outcome: Outcome = corpus["outcomes"][name]
    assert facts(outcome)["golden_after_swap"] == 1  # pytest's "tests failed"
    output = outcome.checks["checks"].stdout
    assert "FAILED tests/test_solution.py::test_predictions_match_the_notebook" in output or (
        "FAILED tests/test_solution.py::test_scores_match_the_notebook" in output
    )
