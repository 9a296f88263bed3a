"""Drift counters: accepted rows counted into the training reference's fixed bins, exported on /metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np  # noqa: TID253 - tests build arrays directly
import pytest

from mlship.serving.drift import feature_bins

from .conftest import ROW, run_service


def drift_samples(text: str) -> dict[str, dict[tuple[str, str], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, dict[tuple[str, str], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("mlship_feature_rows_total", "mlship_feature_reference_share"):
                key = (sample.labels["feature"], sample.labels["bin"])
                found.setdefault(sample.name, {})[key] = sample.value
    return found


def numeric_project(make_project: Callable[..., Path], **options: Any) -> Path:
    """The regressor fixture with a training reference on x1 (exact bins) and x2 (quantiles only)."""
    root = make_project("regressor", **options)
    schema = json.loads((root / "schema.json").read_text())
    schema["columns"][0]["observed"] = {
        "null_fraction": 0.0,
        "quantiles": {"0.01": -2.0, "0.25": -0.5, "0.5": 0.0, "0.75": 0.5, "0.99": 2.0},
        "bins": {"edges": [-2.0, -0.5, 0.0, 0.5, 2.0], "shares": [0.02, 0.23, 0.25, 0.25, 0.23, 0.02]},
    }
    schema["columns"][1]["observed"] = {"quantiles": {"0.01": 0, "0.25": 0, "0.5": 0, "0.75": 1, "0.99": 1}}
    (root / "schema.json").write_text(json.dumps(schema))
    return root


def test_bins_from_exact_shares_quantile_levels_frequencies_and_nulls() -> None:
    schema = {
        "columns": [
            {
                "name": "a",
                "type": "number",
                "observed": {"bins": {"edges": [1, 2], "shares": [0.2, 0.5, 0.3]}},
            },  # noqa: E501
            {"name": "b", "type": "integer", "observed": {"quantiles": {"0.25": 0, "0.5": 0, "0.75": 1}}},
            {
                "name": "c",
                "type": "string",
                "nullable": True,
                "observed": {"frequencies": {"web": 0.6, "pos": 0.3}, "null_fraction": 0.5},
            },
            {"name": "d", "type": "boolean", "observed": {"frequencies": {"true": 0.7, "false": 0.3}}},
            {"name": "e", "type": "number"},  # no reference: not counted
        ]
    }
    a, b, c, d = feature_bins(schema)
    assert a.labels == ["0", "1", "2"] and a.shares == pytest.approx([0.2, 0.5, 0.3])
    # tied quantiles merge: P(b <= 0) >= 0.5 (the highest level at that edge)
    assert b.labels == ["0", "1", "2"] and b.shares == pytest.approx([0.5, 0.25, 0.25])
    assert c.labels == ["web", "pos", "other", "null"]
    assert c.shares == pytest.approx([0.3, 0.15, 0.05, 0.5])
    assert sum(d.shares) == pytest.approx(1.0) and d.labels == ["true", "false", "other"]
    assert a.count(np.array([0.5, 1.0, 1.5, 2.0, 9.0])).tolist() == [2, 2, 1]  # edge values: the bin below
    assert c.count(["web", "pos", "app", None, None]).tolist() == [1, 1, 1, 2]
    assert d.count([True, False, True]).tolist() == [2, 1, 0]


def test_every_accepted_row_is_counted_beside_the_reference(client_for: Callable[..., Any]) -> None:
    client = client_for()
    rows = [ROW, {**ROW, "amount": 1.0, "channel": "pos"}, {**ROW, "amount": 850.0}]
    assert client.post("/predict", json=rows).status_code == 200
    assert client.post("/predict", json={**ROW, "amount": 20.0}).status_code == 200
    assert client.post("/predict", json={**ROW, "amount": -5.0}).status_code == 422  # refused: not counted
    found = drift_samples(client.get("/metrics").text)
    counts, shares = found["mlship_feature_rows_total"], found["mlship_feature_reference_share"]
    assert {k: v for k, v in counts.items() if k[0] == "amount"} == {
        ("amount", "0"): 1,  # 1.0 <= q0.01 = 2
        ("amount", "1"): 1,  # 20.0 is the edge q0.25: the bin below
        ("amount", "2"): 1,  # 45
        ("amount", "3"): 0,
        ("amount", "4"): 0,
        ("amount", "5"): 1,  # 850 > q0.99
    }
    assert counts[("channel", "web")] == 3 and counts[("channel", "pos")] == 1
    assert counts[("channel", "other")] == 0
    assert {feature for feature, _ in counts} == {"amount", "channel"}  # no reference, no counter
    assert sum(v for (f, _), v in shares.items() if f == "amount") == pytest.approx(1.0)
    assert shares[("channel", "web")] == pytest.approx(0.6)
    assert set(shares) == set(counts)


def test_all_numeric_requests_are_binned_as_one_block(
    client_for: Callable[..., Any], make_project: Callable[..., Path]
) -> None:
    client = client_for(project=numeric_project(make_project))
    x1 = [-3.0, -1.0, -0.5, 0.2, 0.7, 3.0, 3.5]
    for value in x1:
        assert client.post("/predict", json={"x1": value, "x2": 1.0}).status_code == 200
    found = drift_samples(client.get("/metrics").text)
    counts = found["mlship_feature_rows_total"]
    assert [counts[("x1", str(i))] for i in range(6)] == [1, 2, 0, 1, 1, 2]
    assert counts[("x2", "1")] == 7  # x2 = 1.0 is the merged edge 1: the bin below it
    assert found["mlship_feature_reference_share"][("x2", "0")] == pytest.approx(0.5)


def test_counts_sum_over_worker_processes(make_project: Callable[..., Path]) -> None:
    import httpx

    root = numeric_project(make_project)
    with run_service(root, workers=2) as service:
        service.wait_ready()
        with httpx.Client(base_url=service.url, timeout=10) as http:
            for _ in range(40):  # new connections: both workers answer some
                assert httpx.post(f"{service.url}/predict", json={"x1": 3.0, "x2": 0.0}).status_code == 200
            deadline = time.monotonic() + 10
            while True:
                found = drift_samples(http.get("/metrics").text)
                counted = found["mlship_feature_rows_total"][("x1", "5")]
                if counted == 40 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
    assert counted == 40
    assert sum(v for (f, _), v in found["mlship_feature_rows_total"].items() if f == "x1") == 40
    assert found["mlship_feature_reference_share"][("x1", "5")] == pytest.approx(0.02)


def test_mlship_drift_off_turns_the_counting_off(
    client_for: Callable[..., Any], make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSHIP_DRIFT", "off")
    client = client_for(project=numeric_project(make_project))
    assert client.post("/predict", json={"x1": 3.0, "x2": 1.0}).status_code == 200
    assert drift_samples(client.get("/metrics").text) == {}
