"""The spare model (mlship.yaml ``fallback:``) is gated like the main one, against its own thresholds."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mlship.cli import app
from tests.gate_projects import GOOD_SOLUTION, make_project

# The rule the test data was made with, without its noise: a decent spare (labels only, no scores).
GOOD_SPARE = """

class Spare:
    def load(self, artifacts) -> None:
        pass

    def predict(self, rows):
        shift = (rows["channel"] == "web").to_numpy() * 120 - 60
        return ((rows["amount"].to_numpy() + shift) > 300).astype(int)
"""
USELESS_SPARE = """

class Spare:
    def predict(self, rows):
        return [0] * len(rows)
"""


def fallback_yaml(f1: float) -> str:
    return f"fallback:\n  model: Spare\n  deadline_ms: 150\n  metrics: {{f1: {{min: {f1}}}}}\n"


def test_a_spare_that_passes_its_own_thresholds_is_shown_and_passes(
    runner: CliRunner, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "p", solution=GOOD_SOLUTION + GOOD_SPARE, extra=fallback_yaml(0.7))
    result = runner.invoke(app, ["test", str(project), "--skip-tests"])
    assert result.exit_code == 0, result.output
    assert "Fallback model Spare" in result.output
    report = json.loads(runner.invoke(app, ["test", str(project), "--skip-tests", "--json"]).stdout)
    assert report["fallback"]["model"] == "Spare" and report["fallback"]["passed"] is True
    assert (
        report["fallback"]["metrics"][0]["name"] == "f1" and report["fallback"]["metrics"][0]["value"] > 0.7
    )
    assert report["gate"]["model"] == "Model"


def test_a_spare_below_its_thresholds_fails_test_with_exit_5_naming_it(
    runner: CliRunner, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "p", solution=GOOD_SOLUTION + USELESS_SPARE, extra=fallback_yaml(0.5))
    result = runner.invoke(app, ["test", str(project), "--skip-tests"])
    assert result.exit_code == 5, result.output
    assert "fallback model Spare: f1" in result.output and "below the minimum 0.5" in result.output
    report = json.loads(runner.invoke(app, ["test", str(project), "--skip-tests", "--json"]).stdout)
    assert report["gate"]["passed"] is True and report["fallback"]["passed"] is False


def test_a_spare_below_its_thresholds_fails_deploy_with_exit_5_before_anything_is_built(
    runner: CliRunner, tmp_path: Path
) -> None:
    project = make_project(
        tmp_path / "p", solution=GOOD_SOLUTION + USELESS_SPARE, extra=fallback_yaml(0.5), project_test=None
    )
    result = runner.invoke(app, ["deploy", str(project), "--registry", "127.0.0.1:9", "--allow-dirty"])
    assert result.exit_code == 5, result.output
    assert "the fallback model Spare failed its gate: f1" in result.output
    assert "nothing was built or pushed" in result.output


def test_a_missing_spare_class_is_named(runner: CliRunner, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", extra=fallback_yaml(0.5))
    result = runner.invoke(app, ["test", str(project), "--skip-tests"])
    assert result.exit_code == 4, result.output
    assert "defines no class Spare" in result.output


def test_junit_has_a_testcase_per_spare_metric(runner: CliRunner, tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    project = make_project(tmp_path / "p", solution=GOOD_SOLUTION + USELESS_SPARE, extra=fallback_yaml(0.5))
    junit = tmp_path / "gate.xml"
    result = runner.invoke(app, ["test", str(project), "--skip-tests", "--junit", str(junit)])
    assert result.exit_code == 5, result.output
    cases = {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}  # noqa: S314
    failure = cases["fallback Spare: f1"].find("failure")
    assert failure is not None and "below the minimum 0.5" in failure.get("message", "")
    assert cases["f1"].find("failure") is None
