"""`mlship monitor accuracy`: a generated prediction log with two versions and delayed labels, checked
against scikit-learn on the same rows."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np  # noqa: TID253 - tests build data directly
import pandas as pd  # noqa: TID253
import pytest
from sklearn import metrics as sk
from typer.testing import CliRunner

from mlship.cli import app
from mlship.errors import DataError
from mlship.ops.monitor.accuracy import live_accuracy


def generate(
    tmp_path: Path, accuracy: dict[str, float], requests: dict[str, int], seed: int = 0
) -> tuple[Path, Path, dict[str, list[tuple[int, int, float]]]]:
    """A log of binary predictions per version (right with the given probability), and labels for 80 % of
    the rows, shuffled, as they arrive late. The truth per version: (label, predicted, score)."""
    rng = np.random.default_rng(seed)
    lines: list[str] = ['{"ts": 1, "level": "info", "event": "ready"}', "not json at all"]
    labels: list[dict[str, Any]] = []
    truth: dict[str, list[tuple[int, int, float]]] = {v: [] for v in accuracy}
    for version, count in requests.items():
        for number in range(count):
            request_id = uuid.uuid4().hex
            size = 2 if number % 10 == 0 else 1  # some batch requests
            ys = rng.integers(0, 2, size)
            right = rng.random(size) < accuracy[version]
            predicted = np.where(right, ys, 1 - ys)
            score = np.clip(np.where(predicted == 1, 0.75, 0.25) + rng.normal(0, 0.2, size), 0, 1)
            record = {
                "ts": 1.0,
                "event": "prediction",
                "predictions": predicted.tolist(),
                "probabilities": [[1 - s, s] for s in score.tolist()],
                "classes": [0, 1],
                "model_version": version,
                "request_id": request_id,
            }
            lines.append(json.dumps(record))
            lines.append(json.dumps({"event": "request", "request_id": request_id, "status": 200}))
            for row in range(size):
                if rng.random() < 0.8:
                    labels.append({"request_id": request_id, "row": row, "is_fraud": int(ys[row])})
                    truth[version].append((int(ys[row]), int(predicted[row]), float(score[row])))
    labels += [{"request_id": f"unknown-{n}", "row": 0, "is_fraud": 1} for n in range(3)]
    log, table = tmp_path / "predictions.jsonl", tmp_path / "labels.csv"
    log.write_text("\n".join(lines) + "\n")
    pd.DataFrame(labels).sample(frac=1.0, random_state=1).to_csv(table, index=False)
    return log, table, truth


def test_per_version_metrics_match_scikit_learn_and_a_worse_canary_is_flagged(tmp_path: Path) -> None:
    log, labels, truth = generate(tmp_path, {"v7": 0.9, "v8": 0.7}, {"v7": 700, "v8": 300})
    result = live_accuracy(log, labels, textfile=tmp_path / "textfile" / "mlship.prom")
    assert result.task == "binary" and (result.live, result.canary) == ("v7", "v8")
    assert result.unmatched_labels == 3
    for version in result.versions:
        y, p, s = (np.array(column) for column in zip(*truth[version.version], strict=True))
        assert version.labelled_rows == len(y)
        expected = {
            "accuracy": sk.accuracy_score(y, p),
            "precision": sk.precision_score(y, p),
            "recall": sk.recall_score(y, p),
            "f1": sk.f1_score(y, p),
            "roc_auc": sk.roc_auc_score(y, s),
        }
        for name, value in expected.items():
            estimate = version.metrics[name]
            assert estimate.value == pytest.approx(value, abs=1e-6), (version.version, name)
            assert estimate.low is not None and estimate.high is not None
            assert estimate.low <= estimate.value <= estimate.high
            assert estimate.high - estimate.low < 0.2
    assert result.canary_worse
    accuracy = next(c for c in result.comparisons if c.metric == "accuracy")
    assert accuracy.worse and accuracy.difference.value == pytest.approx(
        accuracy.canary - accuracy.live, abs=1e-6
    )
    assert accuracy.difference.high is not None and accuracy.difference.high < 0

    from prometheus_client.parser import text_string_to_metric_families

    text = (tmp_path / "textfile" / "mlship.prom").read_text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    v8 = next(v for v in result.versions if v.version == "v8")
    assert samples[("mlship_live_metric", (("metric", "f1"), ("version", "v8")))] == v8.metrics["f1"].value
    assert samples[("mlship_live_labelled_rows", (("version", "v8"),))] == v8.labelled_rows
    assert samples[("mlship_live_version_info", (("role", "canary"), ("version", "v8")))] == 1


def test_an_equally_good_canary_is_not_flagged(tmp_path: Path) -> None:
    log, labels, _ = generate(tmp_path, {"v7": 0.85, "v8": 0.85}, {"v7": 500, "v8": 200}, seed=3)
    result = live_accuracy(log, labels)
    assert result.comparisons and not result.canary_worse


def test_regression_metrics_match_scikit_learn(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(10, 3, 300)
    predicted = y + rng.normal(0, 1, 300)
    ids = [uuid.uuid4().hex for _ in y]
    (tmp_path / "log.jsonl").write_text(
        "\n".join(
            json.dumps(
                {"event": "prediction", "request_id": i, "model_version": "v1", "predictions": [float(p)]}
            )
            for i, p in zip(ids, predicted, strict=True)
        )
    )
    pd.DataFrame({"request_id": ids, "y": y}).to_csv(tmp_path / "labels.csv", index=False)
    result = live_accuracy(tmp_path / "log.jsonl", tmp_path / "labels.csv")
    assert result.task == "regression" and result.canary is None and not result.comparisons
    found = result.versions[0].metrics
    assert found["rmse"].value == pytest.approx(np.sqrt(sk.mean_squared_error(y, predicted)), abs=1e-6)
    assert found["mae"].value == pytest.approx(sk.mean_absolute_error(y, predicted), abs=1e-6)
    assert found["r2"].value == pytest.approx(sk.r2_score(y, predicted), abs=1e-6)


def test_labels_that_match_nothing_are_one_clear_error(tmp_path: Path) -> None:
    log, _, _ = generate(tmp_path, {"v7": 0.9}, {"v7": 10})
    (tmp_path / "other.csv").write_text("request_id,label\nnope,1\n")
    with pytest.raises(DataError, match="none of the 1 labels"):
        live_accuracy(log, tmp_path / "other.csv")


def test_the_command_prints_json_and_checks(tmp_path: Path) -> None:
    log, labels, _ = generate(tmp_path, {"v7": 0.9, "v8": 0.6}, {"v7": 400, "v8": 200})
    runner = CliRunner()
    result = runner.invoke(app, ["monitor", "accuracy", "--log", str(log), "--labels", str(labels), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["canary_worse"] is True and payload["canary"] == "v8"
    checked = runner.invoke(
        app, ["monitor", "accuracy", "--log", str(log), "--labels", str(labels), "--check"]
    )
    assert checked.exit_code == 5
    assert "canary v8 is worse than live v7" in checked.output
    missing = runner.invoke(
        app, ["monitor", "accuracy", "--log", str(tmp_path / "no.jsonl"), "--labels", str(labels)]
    )
    assert missing.exit_code == 2 and "Traceback" not in missing.output
