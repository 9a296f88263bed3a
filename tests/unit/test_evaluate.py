"""The gate's core: metrics and thresholds, reading the test data in chunks, and run_gate on real projects."""

from __future__ import annotations

import hashlib
import http.server
import math
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np  # noqa: TID253 - tests build data frames directly
import pandas as pd  # noqa: TID253
import pytest

from mlship.errors import ConfigError, DataError, TestsFailed
from mlship.gate.evaluate import evaluate_predictions, run_gate
from mlship.gate.sandbox import Predictions
from mlship.project.config import Evaluation, load_project
from mlship.project.data import open_data, read_chunks
from tests.gate_projects import TARGET, make_frame, make_project, solution_with


def _config(metrics: dict[str, dict[str, Any]], **options: Any) -> Evaluation:
    return Evaluation(target="y", metrics=metrics, **options)


def _values(results: list) -> dict[str, float]:
    return {result.name: result.value for result in results}


# --- metrics -------------------------------------------------------------------------------------------


def test_binary_metrics_match_hand_computed_values() -> None:
    truth, predicted = [0, 0, 1, 1], [0, 1, 1, 1]
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.65, 0.35], [0.2, 0.8]])
    config = _config(
        {
            name: {}
            for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "balanced_accuracy")
        }
    )
    values = _values(evaluate_predictions(truth, predicted, proba, config, task="binary", classes=[0, 1]))
    assert values["accuracy"] == pytest.approx(0.75)
    assert values["precision"] == pytest.approx(2 / 3)
    assert values["recall"] == pytest.approx(1.0)
    assert values["f1"] == pytest.approx(0.8)
    assert values["balanced_accuracy"] == pytest.approx(0.75)
    assert values["roc_auc"] == pytest.approx(0.75)  # pairs (pos, neg): 0.35 loses to 0.6 only
    assert values["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.35, 0.8])))


def test_positive_label_of_string_classes() -> None:
    truth, predicted = ["no", "yes", "yes", "no"], ["no", "yes", "no", "no"]
    default = evaluate_predictions(truth, predicted, None, _config({"recall": {}}), task="binary")
    assert default[0].value == pytest.approx(0.5)
    assert "positive label 'yes' (the last class" in (default[0].detail or "")
    chosen = evaluate_predictions(
        truth, predicted, None, _config({"recall": {}}, positive_label="no"), task="binary"
    )
    assert chosen[0].value == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="positive_label: 'maybe' is not one of the classes"):
        evaluate_predictions(
            truth, predicted, None, _config({"f1": {}}, positive_label="maybe"), task="binary"
        )


def test_roc_auc_from_decision_function_respects_the_positive_class() -> None:
    truth = np.array(["a", "a", "b", "b"])
    decision = np.array([-2.0, 0.5, 0.1, 3.0])  # > 0 means classes[1] = "b"
    b = evaluate_predictions(
        truth,
        truth,
        decision,
        _config({"roc_auc": {}}, positive_label="b"),
        task="binary",
        classes=["a", "b"],
        score_kind="decision",
    )
    a = evaluate_predictions(
        truth,
        truth,
        decision,
        _config({"roc_auc": {}}, positive_label="a"),
        task="binary",
        classes=["a", "b"],
        score_kind="decision",
    )
    assert b[0].value == pytest.approx(0.75) and a[0].value == pytest.approx(0.75)


def test_multiclass_averages_roc_auc_ovr_and_log_loss() -> None:
    truth = [0, 1, 2, 2, 1, 0]
    predicted = [0, 2, 2, 2, 1, 0]
    proba = np.array(
        [[0.8, 0.1, 0.1], [0.1, 0.3, 0.6], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1]]
    )
    config = _config(
        {
            "f1_macro": {},
            "f1_weighted": {},
            "precision": {"average": "micro"},
            "roc_auc": {},
            "log_loss": {},
            "accuracy": {},
        }
    )
    results = evaluate_predictions(truth, predicted, proba, config, task="multiclass", classes=[0, 1, 2])
    values = _values(results)
    f1 = [1.0, 2 / 3, 0.8]  # per class: perfect, P=1 R=.5, P=2/3 R=1
    assert values["f1_macro"] == pytest.approx(np.mean(f1))
    assert values["f1_weighted"] == pytest.approx(np.mean(f1))  # two rows of each class
    assert values["precision"] == pytest.approx(5 / 6)
    assert values["accuracy"] == pytest.approx(5 / 6)
    assert values["roc_auc"] == pytest.approx((1 + 1 + 7.5 / 8) / 3)  # class 2: one tie at 0.6 among 8 pairs
    assert values["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.3, 0.8, 0.6, 0.8, 0.7])))
    assert next(r for r in results if r.name == "roc_auc").detail == "one-vs-rest, macro average"


def test_regression_metrics() -> None:
    truth, predicted = [1.0, 2.0, 4.0], [2.0, 2.0, 2.0]
    config = _config({"rmse": {"max": 2}, "mae": {"max": 0.5}, "r2": {}, "mape": {}})
    values = _values(evaluate_predictions(truth, predicted, None, config, task="regression"))
    assert values["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert values["mae"] == pytest.approx(1.0)
    assert values["r2"] == pytest.approx(1 - 5 / (14 / 3))
    assert values["mape"] == pytest.approx((1 + 0 + 0.5) / 3)


def test_thresholds_min_and_max_decide_and_explain() -> None:
    config = _config({"accuracy": {"min": 0.9}, "f1": {"min": 0.5}, "log_loss": {"max": 0.1}})
    results = evaluate_predictions(
        [0, 1, 1, 0],
        [0, 1, 0, 0],
        np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]]),
        config,
        task="binary",
        classes=[0, 1],
    )
    verdicts = {r.name: r.passed for r in results}
    assert verdicts == {"accuracy": False, "f1": True, "log_loss": False}
    accuracy = results[0]
    assert accuracy.explain() == "accuracy = 0.75 is below the minimum 0.9"
    assert accuracy.threshold == "≥ 0.9"
    assert results[2].explain().endswith("is above the maximum 0.1")


@pytest.mark.parametrize(
    ("metrics", "task", "error", "message"),
    [
        ({"roc_auc": {}}, "binary", ConfigError, "needs class scores"),
        ({"rmse": {}}, "binary", ConfigError, "a regression metric, but the task is binary"),
        ({"f1": {}}, "regression", ConfigError, "a classification metric, but the task is regression"),
    ],
)
def test_metrics_that_do_not_fit(metrics: dict, task: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        evaluate_predictions([0, 1], [0, 1], None, _config(metrics), task=task)


def test_roc_auc_on_one_class_is_a_data_error() -> None:
    with pytest.raises(DataError, match="cannot compute roc_auc"):
        evaluate_predictions(
            [1, 1],
            [1, 1],
            np.array([[0.2, 0.8], [0.1, 0.9]]),
            _config({"roc_auc": {}}),
            task="binary",
            classes=[0, 1],
        )


def test_proba_columns_must_match_the_classes() -> None:
    with pytest.raises(TestsFailed, match="returned 3 columns for 2 classes"):
        evaluate_predictions(
            [0, 1], [0, 1], np.ones((2, 3)) / 3, _config({"log_loss": {}}), task="binary", classes=[0, 1]
        )


# --- reading the test data -----------------------------------------------------------------------------


def test_a_missing_file_names_the_path_and_the_field(tmp_path: Path) -> None:
    with pytest.raises(DataError) as raised, open_data(str(tmp_path / "nope.csv"), "data/nope.csv"):
        pass
    assert raised.value.message == "test data data/nope.csv does not exist (evaluation.data in mlship.yaml)"


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    empty, header = tmp_path / "empty.csv", tmp_path / "header.csv"
    empty.write_text("")
    header.write_text("a,b\n")
    with pytest.raises(DataError, match=r"empty \(0 bytes\)"), open_data(str(empty)):
        pass
    with open_data(str(header)) as data, pytest.raises(DataError, match="has a header but no rows"):
        list(read_chunks(data, 10))


def test_an_unreachable_url_names_the_url() -> None:
    with pytest.raises(DataError) as raised, open_data("http://127.0.0.1:9/x.csv"):
        pass
    assert "http://127.0.0.1:9/x.csv" in raised.value.message and "evaluation.data" in raised.value.message


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on loopback serving tmp_path."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    server.shutdown()
    server.server_close()


def test_a_url_is_downloaded_hashed_and_read(http_folder: tuple[str, Path]) -> None:
    base, folder = http_folder
    make_frame(50, seed=5).to_csv(folder / "test.csv", index=False)
    expected = hashlib.sha256((folder / "test.csv").read_bytes()).hexdigest()
    with open_data(f"{base}/test.csv") as data:
        assert data.sha256 == expected and data.format == "csv"
        assert sum(len(chunk) for chunk in read_chunks(data, 20)) == 50
    with pytest.raises(DataError, match="HTTP 404"), open_data(f"{base}/missing.csv"):
        pass


def test_csv_and_parquet_are_read_in_bounded_chunks(tmp_path: Path) -> None:
    frame = make_frame(1000, seed=6)
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=300)
    for name in ("t.csv", "t.parquet"):
        with open_data(str(tmp_path / name)) as data:
            sizes = [len(chunk) for chunk in read_chunks(data, 128)]
        assert max(sizes) <= 128 and sum(sizes) == 1000, name


def test_text_columns_keep_leading_zeros(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("zip,n\n01234,1\n99,2\n")
    with open_data(str(tmp_path / "t.csv")) as data:
        (chunk,) = read_chunks(data, 10, ["zip"])
    assert list(chunk["zip"]) == ["01234", "99"]


# --- the gate on real projects -------------------------------------------------------------------------


def test_the_gate_passes_on_a_good_project(tmp_path: Path) -> None:
    result = run_gate(load_project(make_project(tmp_path / "p")))
    assert result.passed and result.rows == 300 and result.task == "binary"
    assert {m.name for m in result.metrics} == {"f1", "roc_auc", "accuracy"}
    assert all(m.value is not None and m.value > 0.8 for m in result.metrics)
    assert result.data == "data/test.csv"
    assert (
        result.data_sha256 == hashlib.sha256((tmp_path / "p" / "data" / "test.csv").read_bytes()).hexdigest()
    )


def test_chunking_does_not_change_the_metrics(tmp_path: Path) -> None:
    whole = run_gate(load_project(make_project(tmp_path / "a")))
    chunked = run_gate(load_project(make_project(tmp_path / "b", chunk_rows=37)))
    assert _values(chunked.metrics) == pytest.approx(_values(whole.metrics))


def test_parquet_test_data(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", data="data/test.parquet")
    make_frame(200, seed=2).to_parquet(project / "data" / "test.parquet")
    result = run_gate(load_project(project))
    assert result.passed and result.rows == 200


def test_a_threshold_above_the_achieved_value_fails_the_gate(tmp_path: Path) -> None:
    result = run_gate(load_project(make_project(tmp_path / "p", metrics={"accuracy": {"min": 0.999}})))
    assert not result.passed
    (failed,) = result.failed
    assert failed.name == "accuracy" and failed.value is not None and failed.value < 0.999


def test_a_missing_column_stops_with_one_message(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", test_data=make_frame(100, seed=2).drop(columns=["items"]))
    with pytest.raises(DataError) as raised:
        run_gate(load_project(project))
    assert raised.value.message == (
        "test data data/test.csv does not match schema.json: column 'items': is in "
        "schema.json but missing from the data"
    )


def test_text_in_a_numeric_column_counts_rows_over_every_chunk(tmp_path: Path) -> None:
    frame = make_frame(250, seed=2).astype({"amount": object})
    frame.loc[[3, 120, 240], "amount"] = "twelve"
    project = make_project(tmp_path / "p", test_data=frame, chunk_rows=100)
    with pytest.raises(
        DataError,
        match=r"column 'amount': expected a number, got 'twelve' in 3 rows "
        r"\(first at row 4\)",
    ):
        run_gate(load_project(project))


def test_a_missing_target_column(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", test_data=make_frame(20, seed=2).drop(columns=[TARGET]))
    with pytest.raises(
        DataError, match="has no target column 'is_fraud' \\(evaluation.target in mlship.yaml\\)"
    ):
        run_gate(load_project(project))


def test_soft_problems_become_warnings(tmp_path: Path) -> None:
    frame = make_frame(100, seed=2)
    frame.loc[[5, 6], "channel"] = "fax"
    result = run_gate(load_project(make_project(tmp_path / "p", test_data=frame)))
    assert result.warnings == [
        "column 'channel': categories not seen in training: 'fax' in 2 rows (first at row 6)"
    ]


def test_a_crashing_model_is_tests_failed(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", solution=solution_with('raise RuntimeError("boom")'))
    with pytest.raises(TestsFailed, match="solution.py line 9 in predict: RuntimeError: boom"):
        run_gate(load_project(project))


class _RecordingPredictor:
    """A fake predictor: checks that the gate lets go of each chunk's inputs before reading the next."""

    classes = [0, 1]

    def __init__(self) -> None:
        self.alive_at_each_call: list[int] = []
        self.sizes: list[int] = []
        self._seen: list[weakref.ref[pd.DataFrame]] = []

    def predict(self, rows: pd.DataFrame, *, scores: bool) -> Predictions:
        self.alive_at_each_call.append(sum(ref() is not None for ref in self._seen))
        self._seen.append(weakref.ref(rows))
        self.sizes.append(len(rows))
        positive = (rows["amount"].to_numpy() > 300).astype(float)
        return Predictions(
            labels=positive.astype(int), scores=np.column_stack([1 - positive, positive]), score_kind="proba"
        )


def test_the_gate_streams_and_keeps_no_earlier_chunk(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", test_rows=1000, chunk_rows=64)
    predictor = _RecordingPredictor()
    result = run_gate(load_project(project), predictor=predictor)
    assert result.rows == 1000
    assert max(predictor.sizes) == 64 and len(predictor.sizes) == math.ceil(1000 / 64)
    assert predictor.alive_at_each_call == [0] * len(predictor.sizes)


def test_any_predictor_fits_the_same_scoring(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", test_rows=200)
    result = run_gate(load_project(project), predictor=_RecordingPredictor())
    frame = pd.read_csv(project / "data" / "test.csv")
    expected = ((frame["amount"] > 300).astype(int) == frame[TARGET]).mean()
    assert next(m.value for m in result.metrics if m.name == "accuracy") == pytest.approx(expected)


@pytest.mark.slow
def test_benchmark_over_a_million_rows_holds_the_chunk_bound() -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gate.py"
    done = subprocess.run(
        [sys.executable, str(script), "--rows", "1000000", "--chunk-rows", "100000"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "generated 1,000,000 rows" in done.stdout
    (row,) = [line for line in done.stdout.splitlines() if line.strip().startswith("100,000")]
    fields = row.split()
    assert float(fields[1]) > 0  # seconds
    assert "yes" in fields  # the parent's streaming peak minus what it keeps is at most two chunks
    assert "roc_auc=0.9" in row


def test_the_task_is_inferred_when_not_given() -> None:
    binary = evaluate_predictions([0, 1, 1, 0], [0, 1, 0, 0], None, _config({"accuracy": {}}))
    assert binary[0].value == pytest.approx(0.75) and binary[0].detail is None
    recall = evaluate_predictions([0, 1, 1, 0], [0, 1, 0, 0], None, _config({"recall": {}}))
    assert recall[0].detail == "positive label 1"
    regression = evaluate_predictions([1.5, 2.5], [1.0, 3.0], None, _config({"mae": {"max": 1}}))
    assert regression[0].value == pytest.approx(0.5) and regression[0].passed
