"""`mlship monitor rules`: the shipped rules on stdout (rule file, PrometheusRule, Alertmanager example)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from mlship.cli import app


def test_rules_print_a_rule_file_by_default(runner: CliRunner) -> None:
    result = runner.invoke(app, ["monitor", "rules"])
    assert result.exit_code == 0, result.output
    document = yaml.safe_load(result.stdout)
    names = [r.get("alert") or r["record"] for g in document["groups"] for r in g["rules"]]
    assert "job_feature:mlship_feature_psi:5m" in names and "MlshipFeatureDrift" in names


def test_rules_as_prometheusrule_with_options(runner: CliRunner) -> None:
    result = runner.invoke(
        app,
        ["monitor", "rules", "--format", "kubernetes", "--window", "2m", "--for", "0s", "--name", "fraud"],
    )
    assert result.exit_code == 0, result.output
    document = yaml.safe_load(result.stdout)
    assert document["kind"] == "PrometheusRule" and document["metadata"]["name"] == "fraud-rules"
    alerts = [r for g in document["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert {a["for"] for a in alerts} == {"0s"}
    assert "job_feature:mlship_feature_psi:2m > 0.2" in alerts[0]["expr"]


def test_rules_json_and_alertmanager(runner: CliRunner) -> None:
    result = runner.invoke(app, ["monitor", "rules", "--format", "alertmanager", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    receivers = {r["name"] for r in payload["document"]["receivers"]}
    assert receivers == {"webhook", "slack"}


def test_unknown_format_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(app, ["monitor", "rules", "--format", "grafana"])
    assert result.exit_code == 2


def test_report_without_live_data_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "schema.json").write_text(
        '{"mlship_schema": 1, "columns": [{"name": "a", "type": "number"}]}'
    )
    result = runner.invoke(app, ["monitor", "report", "--schema", str(tmp_path / "schema.json")])
    assert result.exit_code == 2
    assert "--log" in result.output and "Traceback" not in result.output
