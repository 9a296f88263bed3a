"""schemathesis against the service's own /openapi.json, served by a real uvicorn process on 127.0.0.1.

Every check, the examples, coverage and fuzzing phases, a bounded number of cases and a time bound: zero
failures (every answer conforms to the document, valid data is accepted, invalid data refused) and no 5xx.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import run_service
from .schemathesis_run import assert_clean, require_schemathesis, run_schemathesis

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_schemathesis_finds_nothing_against_the_service_process(
    make_project: Callable[..., Path], tmp_path: Path, kind: str
) -> None:
    require_schemathesis()
    # a small batch limit so that the fuzzer reaches it (maxItems, answered 413)
    project = make_project(kind, serving={"max_batch_rows": 20, "timeout_s": 5})
    solution = project / "solution.py"  # the fixture model fails on purpose on one valid input: not here
    source = solution.read_text()
    solution.write_text(source.replace('if (rows["amount"] == 666.0).any():', "if False:"))
    assert kind != "classifier" or solution.read_text() != source
    with run_service(project) as service:
        service.wait_ready()
        run = run_schemathesis(service.url, tmp_path / "schemathesis", max_examples=100, max_seconds=25)
        assert service.process.poll() is None, "the service died under schemathesis"
        unhandled = [line for line in service.log_lines() if line.get("event") == "unhandled_error"]
    assert_clean(run, min_cases=500)
    assert not unhandled, unhandled[:3]
    assert run.by_operation("POST /predict")[413] > 0  # the batch limit was reached, and documented
