"""`mlship test` end to end through the CLI: exit codes, messages, the table, --json and --junit."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlship.cli import app
from tests.gate_projects import (
    FAILING_PROJECT_TEST,
    TARGET,
    line_of,
    make_frame,
    make_project,
    solution_with,
)


def _run(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["test", *args])
    return result.exit_code, result.output


def _no_traceback(output: str) -> None:
    assert "Traceback" not in output and 'File "' not in output


def test_a_good_project_passes_with_a_table(runner: CliRunner, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    code, output = _run(runner, str(project))
    assert code == 0, output
    assert "project tests: 1 passed" in output
    for header in ("metric", "value", "threshold", "verdict"):
        assert header in output
    assert "roc_auc" in output and "≥ 0.85" in output and "pass" in output
    assert "gate passed" in output


def test_a_threshold_above_the_achieved_value_exits_5_naming_value_and_threshold(
    runner: CliRunner, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "p", metrics={"f1": {"min": 0.7}, "accuracy": {"min": 0.999}})
    code, output = _run(runner, str(project), "--skip-tests")
    assert code == 5, output
    achieved = json.loads(runner.invoke(app, ["test", str(project), "--skip-tests", "--json"]).stdout)
    accuracy = next(m for m in achieved["gate"]["metrics"] if m["name"] == "accuracy")
    assert accuracy["passed"] is False
    assert f"accuracy = {accuracy['value']:.4g} is below the minimum 0.999" in output
    assert "FAIL" in output and "≥ 0.999" in output and f"{accuracy['value']:.4f}" in output


def test_json_output_is_machine_readable(runner: CliRunner, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    result = runner.invoke(app, ["test", str(project), "--json"])
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert payload["passed"] is True and payload["exit_code"] == 0
    assert payload["pytest"]["passed"] == 1 and payload["pytest"]["failed"] == 0
    assert {m["name"] for m in payload["gate"]["metrics"]} == {"f1", "roc_auc", "accuracy"}
    assert payload["gate"]["rows"] == 300 and len(payload["gate"]["data_sha256"]) == 64


def test_failing_project_tests_exit_4_with_counts(runner: CliRunner, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", project_test=FAILING_PROJECT_TEST)
    code, output = _run(runner, str(project))
    assert code == 4, output
    assert "1 passed, 1 failed" in output and "test_broken" in output
    assert "gate not run" in output


def test_a_broken_test_suite_is_an_error_not_zero_tests(runner: CliRunner, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    (project / "tests" / "conftest.py").write_text("raise RuntimeError('broken conftest')\n")
    code, output = _run(runner, str(project))
    assert code == 4, output
    assert "1 error" in output and "RuntimeError: broken conftest" in output


def test_no_tests_folder_is_zero_tests_not_an_error(runner: CliRunner, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", project_test=None)
    code, output = _run(runner, str(project))
    assert code == 0, output
    assert "project tests: none found" in output


@pytest.mark.parametrize(
    ("body", "load_body", "timeout_s", "expected"),
    [
        ('raise ValueError("negative amount")', "pass", 60, "ValueError: negative amount"),
        ("sys.exit(3)", "pass", 60, "the model process exited with code 3 during predict"),
        ("time.sleep(60)", "pass", 5, "predict took longer than timeout_s=5"),
        ("pass", 'raise OSError("no model file")', 60, "OSError: no model file (during load)"),
    ],
    ids=["raise", "sys-exit", "hang", "load-raise"],
)
def test_user_code_failures_exit_4_without_a_traceback(
    runner: CliRunner, tmp_path: Path, body: str, load_body: str, timeout_s: float, expected: str
) -> None:
    source = solution_with(body, load_body=load_body)
    project = make_project(tmp_path / "p", solution=source, timeout_s=timeout_s)
    code, output = _run(runner, str(project), "--skip-tests")
    assert code == 4, output
    assert expected in output
    assert "solution.py" in output
    _no_traceback(output)
    if body.startswith("raise"):
        assert f"solution.py line {line_of(source, 'raise ValueError')} in predict" in output


def _write_test_data(project: Path, content: str) -> None:
    (project / "data" / "test.csv").write_text(content)


def test_test_data_with_a_missing_column(runner: CliRunner, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", test_data=make_frame(50, seed=2).drop(columns=["channel"]))
    code, output = _run(runner, str(project), "--skip-tests")
    assert code == 1
    assert (
        "does not match schema.json: column 'channel': is in schema.json but missing from the data" in output
    )
    _no_traceback(output)


def test_test_data_with_text_in_a_numeric_column(runner: CliRunner, tmp_path: Path) -> None:
    frame = make_frame(50, seed=2).astype({"items": object})
    frame.loc[7, "items"] = "seven"
    project = make_project(tmp_path / "p", test_data=frame)
    code, output = _run(runner, str(project), "--skip-tests")
    assert code == 1
    assert "column 'items': expected an integer, got 'seven' in 1 row (first at row 8)" in output.replace(
        "\n", " "
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("data/empty.csv", "test data data/empty.csv is empty (0 bytes)"),
        ("data/none.csv", "test data data/none.csv does not exist (evaluation.data in mlship.yaml)"),
        (
            "http://127.0.0.1:9/x.csv",
            "cannot download the test data http://127.0.0.1:9/x.csv (evaluation.data",
        ),
    ],
    ids=["empty", "nonexistent", "unreachable-url"],
)
def test_test_data_that_cannot_be_read(runner: CliRunner, tmp_path: Path, data: str, expected: str) -> None:
    project = make_project(tmp_path / "p", data=data)
    (project / "data" / "empty.csv").write_text("")
    code, output = _run(runner, str(project), "--skip-tests")
    assert code == 1, output
    assert expected in output.replace("\n", " ")
    assert output.count("error:") == 1
    _no_traceback(output)


def test_a_missing_target_column(runner: CliRunner, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", test_data=make_frame(20, seed=2).drop(columns=[TARGET]))
    code, output = _run(runner, str(project), "--skip-tests")
    assert code == 1 and f"no target column '{TARGET}'" in output


def test_invalid_config_exits_3(runner: CliRunner, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", metrics={"f1": {"min": 80}})
    code, output = _run(runner, str(project), "--junit", str(tmp_path / "junit.xml"))
    (gate,) = _cases(ET.parse(tmp_path / "junit.xml").getroot(), "mlship.gate")
    error = gate.find("error")
    assert error is not None and error.get("type") == "ConfigError"
    assert code == 3 and "evaluation.metrics: f1: a threshold must be a number between 0 and 1" in output


def test_invalid_schema_json_exits_3(runner: CliRunner, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    (project / "schema.json").write_text("{not json")
    code, output = _run(runner, str(project), "--skip-tests")
    assert code == 3 and "schema.json:1: not valid JSON" in output


def _cases(root: ET.Element, suite: str) -> list[ET.Element]:
    found = [s for s in root.iter("testsuite") if s.get("name") == suite]
    assert len(found) == 1, suite
    return found[0].findall("testcase")


def test_junit_has_one_testcase_per_metric_and_the_pytest_summary(runner: CliRunner, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", metrics={"f1": {"min": 0.7}, "accuracy": {"min": 0.999}})
    report = tmp_path / "out" / "junit.xml"
    code, _ = _run(runner, str(project), "--junit", str(report))
    assert code == 5
    root = ET.parse(report).getroot()
    gate = _cases(root, "mlship.gate")
    assert [case.get("name") for case in gate] == ["f1", "accuracy"]
    assert gate[0].find("failure") is None
    failure = gate[1].find("failure")
    assert failure is not None
    assert "is below the minimum 0.999" in (failure.get("message") or "")
    assert "accuracy = 0." in (failure.get("message") or "")
    (summary,) = _cases(root, "mlship.pytest")
    assert summary.get("name") == "pytest summary" and summary.find("failure") is None
    assert "1 passed" in (summary.findtext("system-out") or "")
    project_cases = _cases(root, "project.pytest")
    assert [case.get("name") for case in project_cases] == ["test_truth"]
    gate_suite = next(s for s in root.iter("testsuite") if s.get("name") == "mlship.gate")
    assert (gate_suite.get("tests"), gate_suite.get("failures")) == ("2", "1")


def test_junit_records_failed_project_tests_and_a_model_crash(runner: CliRunner, tmp_path: Path) -> None:
    failing = make_project(tmp_path / "a", project_test=FAILING_PROJECT_TEST)
    report = tmp_path / "a.xml"
    assert _run(runner, str(failing), "--junit", str(report))[0] == 4
    root = ET.parse(report).getroot()
    (summary,) = _cases(root, "mlship.pytest")
    failure = summary.find("failure")
    assert failure is not None and "1 failed" in (failure.get("message") or "")
    assert _cases(root, "mlship.gate")[0].find("skipped") is not None

    crashing = make_project(tmp_path / "b", solution=solution_with('raise KeyError("x")'))
    report = tmp_path / "b.xml"
    assert _run(runner, str(crashing), "--skip-tests", "--junit", str(report))[0] == 4
    (gate,) = _cases(ET.parse(report).getroot(), "mlship.gate")
    error = gate.find("error")
    assert (
        error is not None
        and error.get("type") == "TestsFailed"
        and "KeyError" in (error.get("message") or "")
    )


@pytest.mark.slow
def test_template_project_passes(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    created = runner.invoke(app, ["init", "demo"])
    assert created.exit_code == 0, created.output
    code, output = _run(runner, "demo")
    assert code == 0, output
    assert "project tests: 4 passed" in output and "gate passed" in output


def test_test_data_unlike_training_is_a_warning_naming_the_column(runner: CliRunner, tmp_path: Path) -> None:
    same = make_project(tmp_path / "same")
    result = runner.invoke(app, ["test", str(same), "--skip-tests", "--json"])
    assert result.exit_code == 0
    assert not [w for w in json.loads(result.stdout)["gate"]["warnings"] if "PSI" in w]

    shifted = make_frame(300, seed=3)
    shifted["items"] = 9  # every row in the top quartile of training's items
    project = make_project(tmp_path / "shifted", test_data=shifted)
    code, output = _run(runner, str(project), "--skip-tests")
    _no_traceback(output)
    assert "warning:" in output and "column 'items' differs from the training data" in output
    assert "evaluation.max_psi 0.25" in output and "'amount'" not in output
    payload = json.loads(runner.invoke(app, ["test", str(project), "--skip-tests", "--json"]).stdout)
    assert payload["exit_code"] == code  # a warning, not a verdict: the gate decides as before
    config = project / "mlship.yaml"
    config.write_text(config.read_text().replace("  chunk_rows:", "  max_psi: null\n  chunk_rows:"))
    quiet = runner.invoke(app, ["test", str(project), "--skip-tests", "--json"])
    assert quiet.exit_code == code, quiet.stdout
    assert not [w for w in json.loads(quiet.stdout)["gate"]["warnings"] if "PSI" in w]
