"""The CLI's error boundary: config errors exit 3 with one message, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mlship import __version__
from mlship.cli import app
from tests.conftest import VALID_CONFIG

BROKEN = {
    "unknown key": (
        VALID_CONFIG.replace("  target: is_fraud", "  target: is_fraud\n  targt: x"),
        "mlship.yaml:8 evaluation.targt",
    ),
    "wrong type": (VALID_CONFIG.replace("port: 8080", "port: eighty"), "mlship.yaml:13 serving.port"),
    "missing field": (VALID_CONFIG.replace("  target: is_fraud\n", ""), "mlship.yaml:5 evaluation.target"),
    "yaml syntax": (VALID_CONFIG.replace("target: is_fraud", "target: [is_fraud"), "not valid YAML"),
    "duplicate key": (VALID_CONFIG + "name: again\n", "mlship.yaml:14 duplicate key 'name'"),
    "empty file": ("", "mlship.yaml: the file is empty"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_config_exit_3_one_message(case: str, runner: CliRunner, tmp_path: Path) -> None:
    text, expected = BROKEN[case]
    (tmp_path / "mlship.yaml").write_text(text)
    result = runner.invoke(app, ["test", str(tmp_path)])
    assert result.exit_code == 3, result.output
    assert expected in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"mlship {__version__}"


def test_init_refuses_non_empty_dir(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["init", "demo", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "not empty" in result.output and "--force" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_init_without_name_is_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 2
    assert "project name" in result.output


def test_init_missing_notebook(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", "--from-notebook", str(tmp_path / "nope.ipynb")])
    assert result.exit_code == 2
    assert "nope.ipynb does not exist" in result.output


def doctor_checks(runner: CliRunner, folder: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    """`mlship doctor FOLDER --json`: its exit code and its checks by name."""
    result = runner.invoke(app, ["doctor", str(folder), "--json"])
    return result.exit_code, {check["name"]: check for check in json.loads(result.stdout)["checks"]}


def test_doctor_reports_a_broken_config_as_a_failed_check(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "mlship.yaml").write_text(VALID_CONFIG + "name: again\n")
    exit_code, checks = doctor_checks(runner, tmp_path)
    assert exit_code == 3
    assert checks["mlship.yaml"]["status"] == "fail"
    assert "duplicate key 'name'" in checks["mlship.yaml"]["detail"]


def test_doctor_fails_naming_pytest_when_it_is_missing(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def without_pytest(name: str, *args: object, **kwargs: object) -> object:
        return None if name == "pytest" else real_find_spec(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", without_pytest)
    exit_code, checks = doctor_checks(runner, tmp_path)
    assert exit_code == 1
    assert checks["pytest"]["status"] == "fail"
    assert "pip install pytest" in checks["pytest"]["fix"]


def test_doctor_names_the_project_requirements_that_are_not_installed(
    runner: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "mlship.yaml").write_text(VALID_CONFIG)
    (tmp_path / "requirements.in").write_text("pandas>=1\nmlship-no-such-package-xyz==1.0  # the model\n")
    exit_code, checks = doctor_checks(runner, tmp_path)
    assert exit_code != 0
    row = checks["requirements.in"]
    assert row["status"] == "fail"
    assert "mlship-no-such-package-xyz==1.0" in row["detail"]
    assert "pandas" not in row["detail"]
    assert row["fix"] == f"pip install -r {tmp_path / 'requirements.in'}"
    assert checks["pytest"]["status"] == "ok"
