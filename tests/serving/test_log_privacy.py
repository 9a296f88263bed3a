"""Request logs never contain input values unless ``serving.log_inputs: true`` — read from a real service's
whole output (supervisor, worker, uvicorn), for every kind of answer: 200, 413, 422, 500 and broken JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import MARKED_AMOUNT, ROW, run_service

pytestmark = pytest.mark.slow

AMOUNT = 4321.8765  # valid: answered 200
OUT_OF_RANGE = 98765.4321  # above the maximum: 422
CHANNEL = "zq-private-channel-77"  # not in the enum: 422
BROKEN = '{"amount": 1357.9753, "count": '  # malformed JSON: 422
OVER_LIMIT = 2468.0135  # in a batch over max_batch_rows: 413


def _send_everything(url: str) -> dict[str, int]:
    import httpx

    def post(body: Any = None, content: str | None = None) -> int:
        if content is not None:
            answer = httpx.post(
                f"{url}/predict", content=content, headers={"Content-Type": "application/json"}, timeout=10
            )
        else:
            answer = httpx.post(f"{url}/predict", json=body, timeout=10)
        return answer.status_code

    return {
        "valid": post({**ROW, "amount": AMOUNT}),
        "out of range": post({**ROW, "amount": OUT_OF_RANGE}),
        "not in enum": post({**ROW, "channel": CHANNEL}),
        "model error": post({**ROW, "amount": MARKED_AMOUNT}),
        "broken json": post(content=BROKEN),
        "too many rows": post([{**ROW, "amount": OVER_LIMIT}] * 6),
    }


EXPECTED = {
    "valid": 200,
    "out of range": 422,
    "not in enum": 422,
    "model error": 500,
    "broken json": 422,
    "too many rows": 413,
}


@pytest.mark.parametrize("log_inputs", [False, True])
def test_request_logs_hold_input_values_only_with_log_inputs(
    make_project: Callable[..., Path], log_inputs: bool
) -> None:
    project = make_project(serving={"log_inputs": log_inputs, "max_batch_rows": 5})
    with run_service(project) as service:
        service.wait_ready()
        assert _send_everything(service.url) == EXPECTED
    text = service.log.read_text()
    requests = [line for line in service.log_lines() if line.get("event") == "request"]
    assert len(requests) >= len(EXPECTED)  # the lines were written: their absence proves nothing
    private = ["4321.8765", "98765.4321", CHANNEL, "1357.9753", "2468.0135", "reached the model"]
    if not log_inputs:
        assert not [value for value in private if value in text], text[-2000:]
        assert not any("inputs" in line for line in requests)
    else:
        valid = next(line for line in requests if line["status"] == 200 and line["route"] == "/predict")
        assert valid["inputs"]["amount"] == AMOUNT
        errors = [json.loads(line) for line in text.splitlines() if '"model_error"' in line]
        assert errors and "reached the model" in errors[0]["message"]  # the model's message, opted in
