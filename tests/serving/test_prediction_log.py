"""The prediction log: one JSON record per answered request (request id, version, outputs; inputs only when
``serving.log_inputs`` is on), on stdout by default or in a rotating file."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlship.serving import predlog

from .conftest import ROW, run_service


def records(path: Path, expected: int, pattern: str = "*") -> list[dict[str, Any]]:
    """The prediction records in ``path`` (and its rotated files), once ``expected`` of them are there."""
    deadline = time.monotonic() + 5
    while True:
        found = [
            json.loads(line)
            for file in sorted(path.parent.glob(path.name + pattern))
            if not file.name.endswith(".lock")
            for line in file.read_text().splitlines()
            if line.startswith("{")
        ]
        found = [record for record in found if record.get("event") == "prediction"]
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_each_answer_is_one_record_with_id_version_and_outputs(
    client_for: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "logs" / "predictions.jsonl"
    monkeypatch.setenv("MLSHIP_PREDICTION_LOG", str(log))
    client = client_for()
    answers = [client.post("/predict", json=ROW), client.post("/predict", json=[ROW, ROW])]
    answers.append(client.post("/predict?predictions_only=true", json=ROW))
    assert client.post("/predict", json={**ROW, "amount": -1.0}).status_code == 422  # not answered: no record
    found = records(log, 3)
    assert len(found) == 3
    for record, answer in zip(found, answers, strict=True):
        body = answer.json()
        assert record["request_id"] == answer.headers["x-request-id"] == body["request_id"]
        assert record["model_version"] == "v7" == answer.headers["x-model-version"]
        assert record["predictions"] == body["predictions"]
        assert record.get("probabilities") == body.get("probabilities")
        assert "inputs" not in record
        assert record["ts"] == pytest.approx(time.time(), abs=60)
    assert len(found[1]["predictions"]) == 2 and found[0]["classes"] == [0, 1]
    assert "probabilities" not in found[2]


def test_inputs_are_logged_only_with_log_inputs(
    client_for: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "predictions.jsonl"
    monkeypatch.setenv("MLSHIP_PREDICTION_LOG", str(log))
    client = client_for(serving={"log_inputs": True})
    assert client.post("/predict", json=ROW).status_code == 200
    assert records(log, 1)[0]["inputs"] == ROW


def test_the_file_rotates_and_keeps_every_record(
    client_for: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "predictions.jsonl"
    monkeypatch.setenv("MLSHIP_PREDICTION_LOG", str(log))
    monkeypatch.setenv("MLSHIP_PREDICTION_LOG_MAX_MB", "0.002")  # about 2 kB
    monkeypatch.setenv("MLSHIP_PREDICTION_LOG_BACKUPS", "50")
    monkeypatch.setattr(predlog, "FLUSH_S", 0.0)  # each record is written on its own: writes are ~200 bytes
    client = client_for()
    ids = set()
    for _ in range(40):
        answer = client.post("/predict", json=ROW)
        ids.add(answer.headers["x-request-id"])
        time.sleep(0.01)
    found = records(log, 40)
    assert {r["request_id"] for r in found} == ids
    limit = int(0.002 * (1 << 20))
    files = [log] + [Path(f"{log}.{i}") for i in range(1, 51) if Path(f"{log}.{i}").exists()]
    assert len(files) >= 4
    sizes = [file.stat().st_size for file in files]
    assert all(size <= limit for size in sizes), sizes  # rotated before a write would overflow it
    assert all(size > limit - 500 for size in sizes[1:]), sizes  # and not much earlier


def test_stdout_is_the_default_in_a_real_process(make_project: Callable[..., Path]) -> None:
    import httpx

    with run_service(make_project(), workers=1) as service:
        service.wait_ready()
        answer = httpx.post(f"{service.url}/predict", json=ROW, timeout=10)
        assert answer.status_code == 200
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            found = [line for line in service.log_lines() if line.get("event") == "prediction"]
            if found:
                break
            time.sleep(0.05)
    assert [r["request_id"] for r in found] == [answer.headers["x-request-id"]]
