"""POST /predict in-process: answers, request ids, and every refusal with the right status."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import MARKED_AMOUNT, ROW


def model_answer(project: Path, rows: list[dict[str, Any]]) -> tuple[list[Any], list[list[float]]]:
    """What the fixture model itself says for these rows (loaded outside the service)."""
    import joblib
    import numpy as np
    import pandas as pd

    clf = joblib.load(project / "model" / "model.joblib")
    frame = pd.DataFrame(rows)
    x = np.column_stack(
        [
            frame["amount"],
            frame["count"],
            (frame["channel"] == "web"),
            frame["flag"],
            frame["score"].fillna(0.0),
        ]
    ).astype(float)
    return clf.predict(x).tolist(), clf.predict_proba(x).tolist()


def assert_close(found: Any, expected: Any) -> None:
    import numpy as np

    np.testing.assert_allclose(np.asarray(found), np.asarray(expected), rtol=0, atol=1e-12)


def test_one_row_answers_the_models_prediction(make_project: Callable[..., Path], client_for: Any) -> None:
    project = make_project()
    client = client_for(project=project)
    response = client.post("/predict", json=ROW)
    assert response.status_code == 200
    body = response.json()
    predictions, probabilities = model_answer(project, [ROW])
    assert body["predictions"] == predictions
    assert_close(body["probabilities"], probabilities)
    assert body["classes"] == [0, 1]
    assert body["model_version"] == "v7"
    assert body["request_id"] == response.headers["x-request-id"]
    assert response.headers["x-model-version"] == "v7"


def test_a_batch_answers_row_by_row_in_order(make_project: Callable[..., Path], client_for: Any) -> None:
    project = make_project()
    client = client_for(project=project)
    rows = [
        {**ROW, "amount": float(a), "channel": c, "score": s}
        for a, c, s in [(5, "web", None), (700, "pos", 0.1), (400, "web", -0.9), (350, "pos", None)]
    ]
    body = client.post("/predict", json=rows).json()
    predictions, probabilities = model_answer(project, rows)
    assert body["predictions"] == predictions
    assert_close(body["probabilities"], probabilities)
    assert len(set(body["predictions"])) == 2  # the rows really differ


def test_predictions_only_skips_the_probabilities_and_a_batch_can_mix_both(
    make_project: Callable[..., Path], client_for: Any
) -> None:
    import threading

    project = make_project(hashes=False)
    solution = project / "solution.py"
    solution.write_text(  # counts predict_proba's calls
        solution.read_text()
        + "\n\nclass _Counted(Model):\n    calls = 0\n\n\nclass Model(_Counted):  # noqa: F811\n"
        "    def predict_proba(self, rows):\n"
        "        type(self).calls += 1\n"
        "        return super().predict_proba(rows)\n"
    )
    client = client_for(project=project)
    counted = type(client.app.state.service.model.model)
    self_test_calls = counted.calls  # the start-up self-test asks for everything
    predictions, probabilities = model_answer(project, [ROW])
    for value in ("true", "1", "True"):
        body = client.post(f"/predict?predictions_only={value}", json=ROW).json()
        assert body["predictions"] == predictions
        assert "probabilities" not in body and "classes" not in body
    assert counted.calls == self_test_calls
    body = client.post("/predict?predictions_only=false", json=ROW).json()
    assert_close(body["probabilities"], probabilities)
    assert counted.calls == self_test_calls + 1
    answers: dict[str, Any] = {}

    def send(name: str, query: str) -> None:
        answers[name] = client.post(f"/predict{query}", json=[ROW] * 3).json()

    threads = [
        threading.Thread(target=send, args=(f"{kind}{i}", query))
        for i in range(4)
        for kind, query in (("only", "?predictions_only=true"), ("both", ""))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, body in answers.items():
        assert body["predictions"] == predictions * 3
        assert ("probabilities" in body) == name.startswith("both"), name


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("predictions_only=maybe", "predictions_only must be true or false, got 'maybe'"),
        ("predictons_only=true", "unknown query parameter 'predictons_only'"),
    ],
)
def test_a_bad_query_is_422_naming_the_parameter(client: Any, query: str, fragment: str) -> None:
    response = client.post(f"/predict?{query}", json=ROW)
    assert response.status_code == 422
    assert fragment in response.json()["error"]
    assert client.post("/predict", json=ROW).status_code == 200


def test_a_callers_request_id_is_honoured_and_a_bad_one_replaced(client: Any) -> None:
    response = client.post("/predict", json=ROW, headers={"X-Request-ID": "caller-123"})
    assert response.headers["x-request-id"] == "caller-123"
    assert response.json()["request_id"] == "caller-123"
    response = client.post("/predict", json=ROW, headers={"X-Request-ID": "bad id with spaces" * 20})
    assert response.headers["x-request-id"] != "bad id with spaces" * 20
    assert len(response.headers["x-request-id"]) == 32
    assert client.get("/health/live").headers["x-request-id"]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/octet-stream",
        "application/python-pickle",
        "application/x-python+pickle",
        "text/plain",
        None,
    ],
)
def test_non_json_content_types_are_415_and_the_body_is_never_deserialised(
    client: Any, tmp_path: Path, content_type: str | None
) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/predict", content=pickle.dumps(Exploit()), headers=headers)
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]
    assert not marker.exists()
    assert client.post("/predict", json=ROW).status_code == 200


def test_json_with_a_charset_parameter_is_accepted(client: Any) -> None:
    response = client.post(
        "/predict", content=json.dumps(ROW), headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "row", "field"),
    [
        (b'{"amount": 45.0,', None, None),
        (json.dumps({k: v for k, v in ROW.items() if k != "flag"}).encode(), 0, "flag"),
        (json.dumps([ROW, {**ROW, "amount": "lots"}]).encode(), 1, "amount"),
        (json.dumps([ROW, ROW, {**ROW, "score": 5}]).encode(), 2, "score"),
        (json.dumps({**ROW, "channel": "fax"}).encode(), 0, "channel"),
        (json.dumps({**ROW, "amount": None}).encode(), 0, "amount"),
        (json.dumps({**ROW, "surprise": 1}).encode(), 0, "surprise"),
        (b"[]", None, None),
    ],
)
def test_bad_requests_are_422_naming_row_and_field_and_the_next_one_succeeds(
    client: Any, body: bytes, row: int | None, field: str | None
) -> None:
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    detail = response.json()["details"][0]
    assert (detail["row"], detail["field"]) == (row, field)
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert client.post("/predict", json=ROW).status_code == 200


def test_more_rows_than_max_batch_rows_is_413_naming_the_limit(client_for: Any) -> None:
    client = client_for(serving={"max_batch_rows": 5})
    response = client.post("/predict", json=[ROW] * 6)
    assert response.status_code == 413
    assert "limit of 5 rows" in response.json()["error"]
    assert client.post("/predict", json=[ROW] * 5).status_code == 200


def test_a_body_over_max_body_mb_is_413_by_content_length(client_for: Any) -> None:
    client = client_for(serving={"max_body_mb": 0.001})  # 1048 bytes
    response = client.post("/predict", json=[ROW] * 30)
    assert response.status_code == 413
    assert "0.001 MB" in response.json()["error"]
    assert client.post("/predict", json=ROW).status_code == 200


def test_a_streamed_body_is_counted_and_cut_at_the_limit(client_for: Any) -> None:
    client = client_for(serving={"max_body_mb": 0.001})
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(100):  # 100 × 100 bytes with no Content-Length (chunked)
            sent.append(1)
            yield b" " * 100

    response = client.post("/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_a_model_exception_is_500_with_the_request_id_and_the_next_request_is_fine(client_for: Any) -> None:
    import io

    log = io.StringIO()
    client = client_for(log_stream=log)
    response = client.post(
        "/predict", json={**ROW, "amount": MARKED_AMOUNT}, headers={"X-Request-ID": "boom-1"}
    )
    assert response.status_code == 500
    assert response.json()["request_id"] == "boom-1"
    assert "boom-1" in response.json()["error"]
    errors = [json.loads(line) for line in log.getvalue().splitlines() if '"model_error"' in line]
    assert errors and errors[0]["request_id"] == "boom-1" and errors[0]["error"] == "ValueError"
    assert "solution.py" in errors[0]["where"]
    assert client.post("/predict", json=ROW).status_code == 200


def test_a_prediction_slower_than_timeout_s_is_504(client_for: Any) -> None:
    client = client_for("slow", serving={"timeout_s": 0.3})
    response = client.post("/predict", json={**ROW, "delay": 1.0})
    assert response.status_code == 504
    assert "0.3 s" in response.json()["error"]
    import time

    time.sleep(0.8)  # let the slow call finish: the model thread is single
    assert client.post("/predict", json={**ROW, "delay": 0.0}).status_code == 200


def test_predict_before_the_model_is_loaded_is_503_and_ready_says_so(
    make_project: Callable[..., Path],
) -> None:
    from starlette.testclient import TestClient

    from mlship.serving import create_app

    project = make_project(hashes=False)
    (project / "model" / "load_delay.txt").write_text("1.0")
    with TestClient(create_app(project)) as client:  # loads in the background
        assert client.get("/health/live").status_code == 200
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "loading"
        response = client.post("/predict", json=ROW)
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        import time

        deadline = time.monotonic() + 10
        while client.get("/health/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/health/ready").status_code == 200
        assert client.post("/predict", json=ROW).status_code == 200


def test_a_regressor_answers_numbers_without_probabilities(client_for: Any) -> None:
    client = client_for("regressor")
    body = client.post("/predict", json=[{"x1": 1.0, "x2": 0.0}, {"x1": 0.0, "x2": 1.0}]).json()
    assert body["predictions"] == pytest.approx([13.0, 9.0])
    assert "probabilities" not in body and "classes" not in body


def test_a_model_without_predict_proba_answers_decision_scores(client_for: Any, make_project: Any) -> None:
    """SVC-like models: roc_auc needs scores, so the service returns decision_function's as `scores`."""
    project = make_project(hashes=False)
    solution = project / "solution.py"
    solution.write_text(
        solution.read_text()
        + "\n\nclass _WithProba(Model):\n    pass\n\n\nclass Model(_WithProba):  # noqa: F811\n"
        "    predict_proba = None\n\n"
        "    def decision_function(self, rows):\n"
        "        return self.clf.decision_function(features(rows))\n"
    )
    client = client_for(project=project)
    body = client.post("/predict", json=[ROW, ROW]).json()
    assert "probabilities" not in body
    assert len(body["scores"]) == 2 and all(isinstance(value, float) for value in body["scores"])
    assert body["classes"] == [0, 1]
    spec = client.get("/openapi.json").json()
    assert "scores" in spec["components"]["schemas"]["PredictResponse"]["properties"]


def test_a_non_finite_prediction_is_null_and_the_document_says_so(client_for: Any) -> None:
    """Valid inputs at the edge of the range can overflow a model: JSON has no infinity, so the answer is
    null, and the OpenAPI document allows it (schemathesis found the document saying "number")."""
    from jsonschema import Draft202012Validator

    client = client_for("regressor")
    response = client.post("/predict", json=[{"x1": 0.1, "x2": 1.7976931348623157e308}, {"x1": 1.0, "x2": 0}])
    assert response.status_code == 200
    body = response.json()
    assert body["predictions"][0] is None and body["predictions"][1] == pytest.approx(13.0)
    document = client.get("/openapi.json").json()
    Draft202012Validator(document["components"]["schemas"]["PredictResponse"]).validate(body)
    classifier = client_for().get("/openapi.json").json()["components"]["schemas"]["PredictResponse"]
    Draft202012Validator(classifier).validate(
        {"predictions": [None, 1], "probabilities": [[None, 0.5]], "model_version": "v", "request_id": "r"}
    )
