"""The shipped rules with the real promtool (Debian `prometheus`): they parse, and each alert fires on the
series that should fire it and stays silent on their healthy twins (`promtool test rules`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlship.ops.monitor.rules import RuleSettings, alertmanager_example, rules_document

pytestmark = pytest.mark.integration

SETTINGS = RuleSettings()  # the shipped defaults: 5m windows, real `for` durations
EVAL = "40m"  # past every alert's `for`


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        from tests.integration.conftest import unavailable

        unavailable(f"{name} is not installed; run scripts/ops-tools.sh")
    return path


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def drift_series(job: str, live: list[int]) -> list[dict[str, str]]:
    """Two bins with reference shares 0.5/0.5; ``live`` rows per minute into each."""
    found = []
    for index, per_minute in enumerate(live):
        labels = {"job": job, "feature": "amount", "bin": str(index)}
        found.append(series("mlship_feature_rows_total", labels, f"0+{per_minute}x60"))
        found.append(series("mlship_feature_reference_share", labels, "0.5x60"))
    return found


def traffic(job: str, ok: int, errors: int, fallbacks: int) -> list[dict[str, str]]:
    route = {"job": job, "route": "/predict"}
    return [
        series("mlship_requests_total", {**route, "status": "200"}, f"0+{ok}x60"),
        series("mlship_requests_total", {**route, "status": "500"}, f"0+{errors}x60"),
        series("mlship_fallback_total", {"job": job, "reason": "timeout"}, f"0+{fallbacks}x60"),
    ]


def latency(job: str, per_bucket: dict[str, int]) -> list[dict[str, str]]:
    """Cumulative histogram buckets, each growing by its count per minute."""
    return [
        series(
            "mlship_request_duration_seconds_bucket", {"job": job, "route": "/predict", "le": le}, f"0+{n}x60"
        )
        for le, n in per_bucket.items()
    ]


def accuracy(
    job: str, live: float, canary: float, canary_rows: int, metric: str = "f1"
) -> list[dict[str, str]]:
    labels = {"job": job}
    return [
        series("mlship_live_metric", {**labels, "version": "v7", "metric": metric}, f"{live}x60"),
        series("mlship_live_metric", {**labels, "version": "v8", "metric": metric}, f"{canary}x60"),
        series("mlship_live_version_info", {**labels, "version": "v7", "role": "live"}, "1x60"),
        series("mlship_live_version_info", {**labels, "version": "v8", "role": "canary"}, "1x60"),
        series("mlship_live_labelled_rows", {**labels, "version": "v7"}, "5000x60"),
        series("mlship_live_labelled_rows", {**labels, "version": "v8"}, f"{canary_rows}x60"),
    ]


def annotations(name: str, labels: dict[str, str]) -> dict[str, str]:
    """The alert's annotations with its labels filled in (promtool compares them too)."""
    rule = next(r for g in rules_document(SETTINGS)["groups"] for r in g["rules"] if r.get("alert") == name)
    filled = {}
    for key, text in rule["annotations"].items():
        for label, value in labels.items():
            text = text.replace(f"{{{{ $labels.{label} }}}}", value)
        filled[key] = text
    return filled


def fires(name: str, severity: str, **labels: str) -> dict[str, Any]:
    expected = {"alertname": name, "eval_time": EVAL, "exp_alerts": []}
    expected["exp_alerts"] = [
        {"exp_labels": {**labels, "severity": severity}, "exp_annotations": annotations(name, labels)}
    ]
    return expected


def silent(name: str) -> dict[str, Any]:
    return {"alertname": name, "eval_time": EVAL, "exp_alerts": []}


ALERTS = [
    "MlshipFeatureDrift",
    "MlshipHighErrorRatio",
    "MlshipSlowPredictions",
    "MlshipHighFallbackRate",
    "MlshipCanaryWorseThanLive",
]


def unit_tests() -> dict[str, Any]:
    bad = [
        *drift_series("svc", [100, 0]),
        *traffic("svc", ok=90, errors=10, fallbacks=10),
        *latency("svc", {"0.5": 0, "1.0": 10, "+Inf": 10}),
        *accuracy("labels", live=0.90, canary=0.80, canary_rows=500),
        *accuracy("labels-rmse", live=1.0, canary=1.5, canary_rows=500, metric="rmse"),
    ]
    good = [
        *drift_series("svc", [50, 50]),
        *traffic("svc", ok=99, errors=1, fallbacks=1),
        *latency("svc", {"0.05": 9, "0.1": 10, "0.5": 10, "1.0": 10, "+Inf": 10}),
        *accuracy("labels", live=0.90, canary=0.895, canary_rows=500),  # within max_drop 0.01
        *accuracy("few", live=0.90, canary=0.50, canary_rows=20),  # too few labels to judge
        *accuracy("labels-rmse", live=1.0, canary=0.9, canary_rows=500, metric="rmse"),  # lower is better
        *drift_series("quiet", [1, 0]),  # drifted but too few rows (min_rows)
    ]
    return {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": bad,
                "alert_rule_test": [
                    fires("MlshipFeatureDrift", "warning", job="svc", feature="amount"),
                    fires("MlshipHighErrorRatio", "critical", job="svc"),
                    fires("MlshipSlowPredictions", "warning", job="svc"),
                    fires("MlshipHighFallbackRate", "warning", job="svc"),
                    {
                        "alertname": "MlshipCanaryWorseThanLive",
                        "eval_time": EVAL,
                        "exp_alerts": [
                            {
                                "exp_labels": {**labels, "severity": "critical"},
                                "exp_annotations": annotations("MlshipCanaryWorseThanLive", labels),
                            }
                            for labels in (
                                {"job": "labels", "version": "v8", "metric": "f1"},
                                {"job": "labels-rmse", "version": "v8", "metric": "rmse"},
                            )
                        ],
                    },
                    {"alertname": "MlshipFeatureDrift", "eval_time": "5m", "exp_alerts": []},  # before `for`
                ],
                "promql_expr_test": [
                    {
                        "expr": "round(job_feature:mlship_feature_psi:5m, 0.01)",
                        "eval_time": EVAL,
                        # (1 - .5) ln 2 + (1e-4 - .5) ln(1e-4 / .5)
                        "exp_samples": [{"labels": '{job="svc", feature="amount"}', "value": 4.6}],
                    },
                    {
                        "expr": "job:mlship_request_errors:ratio_rate5m",
                        "eval_time": EVAL,
                        "exp_samples": [
                            {"labels": 'job:mlship_request_errors:ratio_rate5m{job="svc"}', "value": 0.1}
                        ],
                    },
                ],
            },
            {
                "interval": "1m",
                "input_series": good,
                "alert_rule_test": [silent(name) for name in ALERTS],
                "promql_expr_test": [
                    {
                        "expr": 'job_feature:mlship_feature_psi:5m{job="svc"}',
                        "eval_time": EVAL,
                        "exp_samples": [
                            {
                                "labels": 'job_feature:mlship_feature_psi:5m{job="svc", feature="amount"}',
                                "value": 0,
                            }
                        ],
                    },
                    {
                        "expr": "round(job:mlship_request_duration_seconds:p95_5m, 0.001)",
                        "eval_time": EVAL,
                        # rank 9.5 of 10: half-way into the (0.05, 0.1] bucket
                        "exp_samples": [{"labels": '{job="svc"}', "value": 0.075}],
                    },
                ],
            },
        ],
    }


@pytest.mark.parametrize("form", ["prometheus", "kubernetes"])
def test_promtool_checks_the_shipped_rules(tmp_path: Path, form: str) -> None:
    document = rules_document(SETTINGS, form)  # type: ignore[arg-type]
    groups = document["groups"] if form == "prometheus" else document["spec"]["groups"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    done = subprocess.run(
        [tool("promtool"), "check", "rules", str(tmp_path / "rules.yaml")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 17 rules found" in done.stdout
    assert {r["alert"] for g in groups for r in g["rules"] if "alert" in r} == set(ALERTS)


def test_each_alert_fires_on_its_symptom_and_not_on_healthy_series(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules_document(SETTINGS)))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(unit_tests(), sort_keys=False))
    done = subprocess.run(
        [tool("promtool"), "test", "rules", "tests.yaml"], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_alertmanager_example_passes_amtool(tmp_path: Path) -> None:
    (tmp_path / "alertmanager.yaml").write_text(yaml.safe_dump(alertmanager_example()))
    done = subprocess.run(
        [tool("amtool"), "check-config", str(tmp_path / "alertmanager.yaml")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 receivers" in done.stdout
