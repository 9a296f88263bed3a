"""Operating the service in-process: metrics, request logs, micro-batching and the concurrency limit."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import MARKED_AMOUNT, ROW

pytestmark = pytest.mark.serial  # batching windows and latency bounds: measured without neighbours


def metric_samples(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    return thread, result


def model_of(client: Any) -> Any:
    return type(client.app.state.service.model.model)


# --- metrics ---


def test_metrics_count_requests_latency_predictions_and_in_flight(client: Any) -> None:
    for _ in range(3):
        assert client.post("/predict", json=ROW).status_code == 200
    assert client.post("/predict", json=[ROW, {**ROW, "amount": 700.0, "channel": "pos"}]).status_code == 200
    assert client.post("/predict", json={"nope": 1}).status_code == 422
    samples = metric_samples(client)
    assert samples[("mlship_requests_total", (("route", "/predict"), ("status", "200")))] == 4
    assert samples[("mlship_requests_total", (("route", "/predict"), ("status", "422")))] == 1
    assert samples[("mlship_request_duration_seconds_count", (("route", "/predict"),))] == 5
    by_class = {labels: v for (name, labels), v in samples.items() if name == "mlship_predictions_total"}
    assert sum(by_class.values()) == 5  # rows served (the self-test is not counted)
    assert all(dict(labels)["class"] in {"0", "1"} for labels in by_class)
    assert samples[("mlship_predict_in_flight", ())] == 0
    assert samples[("mlship_batch_rows_count", ())] >= 4
    assert samples[("mlship_model_info", (("name", "classifier-service"), ("version", "v7")))] == 1


def test_regression_predictions_are_counted_by_target_quantile_bucket(client_for: Any) -> None:
    client = client_for("regressor")
    client.post("/predict", json=[{"x1": 1.0, "x2": 0.0}, {"x1": 0.0, "x2": 1.0}, {"x1": -5.0, "x2": 0.0}])
    buckets = {
        dict(labels)["bucket"]: v
        for (name, labels), v in metric_samples(client).items()
        if name == "mlship_predictions_total"
    }
    assert buckets[">12"] == 1  # 13.0
    assert buckets["(8,10]"] == 1  # 9.0
    assert buckets["<=8"] == 1  # -5.0
    assert "(10,12]" not in buckets  # the self-test is not counted


# --- logs ---


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_line_per_request_and_no_input_values(client_for: Any) -> None:
    log = io.StringIO()
    client = client_for(log_stream=log)
    client.post("/predict", json={**ROW, "amount": 4321.8765}, headers={"X-Request-ID": "r-1"})
    client.post("/predict", json={**ROW, "amount": 99999.4321}, headers={"X-Request-ID": "r-2"})  # 422
    client.post("/predict", json={**ROW, "amount": MARKED_AMOUNT}, headers={"X-Request-ID": "r-3"})  # 500
    client.get("/health/live", headers={"X-Request-ID": "r-4"})
    requests = [line for line in log_lines(log) if line["event"] == "request"]
    assert [(r["request_id"], r["status"]) for r in requests] == [
        ("r-1", 200),
        ("r-2", 422),
        ("r-3", 500),
        ("r-4", 200),
    ]
    first = requests[0]
    assert first["model_version"] == "v7" and first["route"] == "/predict" and first["rows"] == 1
    assert first["latency_ms"] > 0 and first["method"] == "POST"
    text = log.getvalue()
    assert "4321.8765" not in text and "99999.4321" not in text
    assert "reached the model" not in text  # the model's message may quote an input


def test_log_inputs_true_puts_the_inputs_in_the_line(client_for: Any) -> None:
    log = io.StringIO()
    client = client_for(log_stream=log, serving={"log_inputs": True})
    client.post("/predict", json={**ROW, "amount": 4321.8765})
    request = next(line for line in log_lines(log) if line["event"] == "request")
    assert request["inputs"]["amount"] == 4321.8765


# --- micro-batching ---


def test_requests_arriving_while_the_model_is_busy_share_one_predict_call(client_for: Any) -> None:
    client = client_for("slow")
    model = model_of(client)
    model.batches.clear()
    blocker, _ = in_thread(lambda: client.post("/predict", json={**ROW, "delay": 0.6}))
    time.sleep(0.2)  # the model thread is now asleep inside predict
    threads = [
        in_thread(lambda i=i: client.post("/predict", json={**ROW, "amount": float(i), "delay": 0.0}))
        for i in range(5)
    ]
    blocker.join()
    for thread, _ in threads:
        thread.join()
    answers = [result[0] for _, result in threads]
    assert all(a.status_code == 200 for a in answers)
    assert model.batches == [1, 5]


def test_a_lone_request_is_dispatched_at_once_even_with_a_long_max_wait(client_for: Any) -> None:
    client = client_for(serving={"batching": {"max_size": 64, "max_wait_ms": 1000}})
    client.post("/predict", json=ROW)
    started = time.perf_counter()
    for _ in range(5):
        assert client.post("/predict", json=ROW).status_code == 200
    assert (time.perf_counter() - started) / 5 < 0.25


def test_batches_never_exceed_max_size_rows(client_for: Any) -> None:
    client = client_for("slow", serving={"batching": {"max_size": 4, "max_wait_ms": 0}})
    model = model_of(client)
    model.batches.clear()
    blocker, _ = in_thread(lambda: client.post("/predict", json={**ROW, "delay": 0.5}))
    time.sleep(0.15)
    threads = [in_thread(lambda: client.post("/predict", json=[{**ROW, "delay": 0.0}] * 2)) for _ in range(5)]
    blocker.join()
    for thread, _ in threads:
        thread.join()
    assert all(result[0].status_code == 200 for _, result in threads)
    assert max(model.batches[1:]) <= 4 and sum(model.batches[1:]) == 10


def test_a_failing_request_fails_alone_in_a_shared_batch(client_for: Any) -> None:
    client = client_for("slow")
    model = model_of(client)
    model.batches.clear()
    blocker, _ = in_thread(lambda: client.post("/predict", json={**ROW, "delay": 0.6}))
    time.sleep(0.2)
    amounts = [10.0, MARKED_AMOUNT, 20.0, 30.0]
    threads = [
        in_thread(lambda a=a: client.post("/predict", json={**ROW, "amount": a, "delay": 0.0}))
        for a in amounts
    ]
    blocker.join()
    for thread, _ in threads:
        thread.join()
    statuses = {a: result[0].status_code for a, (_, result) in zip(amounts, threads, strict=True)}
    assert statuses == {10.0: 200, MARKED_AMOUNT: 500, 20.0: 200, 30.0: 200}
    assert model.batches[1] == 4  # they were batched, then retried one by one


# --- the concurrency limit ---


def test_past_max_concurrency_the_answer_is_503_at_once_and_health_still_answers(client_for: Any) -> None:
    client = client_for("slow", serving={"max_concurrency": 2, "timeout_s": 10})
    busy = [in_thread(lambda: client.post("/predict", json={**ROW, "delay": 1.5})) for _ in range(2)]
    time.sleep(0.3)
    started = time.perf_counter()
    refused = client.post("/predict", json={**ROW, "delay": 0.0})
    assert time.perf_counter() - started < 0.5
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "concurrency" in refused.json()["error"]
    for path in ("/health/live", "/health/ready", "/metrics"):
        started = time.perf_counter()
        assert client.get(path).status_code == 200
        assert time.perf_counter() - started < 1.0, path
    assert metric_samples(client)[("mlship_predict_in_flight", ())] == 2
    for thread, _ in busy:
        thread.join()
    assert all(result[0].status_code == 200 for _, result in busy)
    assert client.post("/predict", json={**ROW, "delay": 0.0}).status_code == 200
    assert metric_samples(client)[("mlship_predict_in_flight", ())] == 0


@pytest.mark.parametrize("limit", [1, 3])
def test_the_limit_admits_exactly_max_concurrency(client_for: Any, limit: int) -> None:
    client = client_for("slow", serving={"max_concurrency": limit, "timeout_s": 10})
    threads = [
        in_thread(lambda: client.post("/predict", json={**ROW, "delay": 0.8})) for _ in range(limit + 2)
    ]
    for thread, _ in threads:
        thread.join()
    statuses = sorted(result[0].status_code for _, result in threads)
    assert statuses == [200] * limit + [503] * 2


def test_after_a_busy_batch_a_lone_request_waits_at_most_max_wait_once(client_for: Any) -> None:
    client = client_for("slow", serving={"batching": {"max_size": 64, "max_wait_ms": 600}})
    model = model_of(client)
    model.batches.clear()
    blocker, _ = in_thread(lambda: client.post("/predict", json={**ROW, "delay": 0.5}))
    time.sleep(0.15)
    threads = [in_thread(lambda: client.post("/predict", json={**ROW, "delay": 0.0})) for _ in range(4)]
    blocker.join()
    for thread, _ in threads:
        thread.join()
    assert model.batches == [1, 4]
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        assert client.post("/predict", json={**ROW, "delay": 0.0}).status_code == 200
        timings.append(time.perf_counter() - started)
    assert 0.55 <= timings[0] < 1.5  # expected 4 like the last batch: waited, but no longer than max_wait
    assert timings[1] < 0.45 and timings[2] < 0.45  # the batch of 1 reset the expectation
