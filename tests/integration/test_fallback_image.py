"""The spare model (``fallback:``) in a built image: errors, the deadline and the breaker, over HTTP.

The `mlship init` template gets a ``Spare`` class (a one-feature rule) and a main ``Model`` that raises on
rows marked by one value of ``mean radius`` and sleeps on another; one worker, so one breaker.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlship.adapters import engine as image
from mlship.build.assemble import BuildResult, build_project

pytestmark = pytest.mark.integration

RAISES, SLOW = 13.131313, 14.141414  # marked values of "mean radius" (inside the schema's bounds)
FLAKY_MAIN = f'''

import time as _time

_Main = Model


class Model(_Main):
    """The template's model, raising on one marked value and sleeping 0.6 s on another."""

    def predict(self, rows):
        if (rows["mean radius"] == {RAISES}).any():
            raise ValueError("marked row")
        if (rows["mean radius"] == {SLOW}).any():
            _time.sleep(0.6)
        return super().predict(rows)


class Spare:
    """A one-feature rule: small tumours are benign (1)."""

    def predict(self, rows):
        return (rows["worst area"] < 880).astype(int).to_numpy()
'''
FALLBACK = (
    "fallback: {model: Spare, deadline_ms: 300, failures: 3, window_s: 30, cooldown_s: 1, successes: 1,\n"
    "           metrics: {f1: {min: 0.8}}}\n"
)


@pytest.fixture(scope="session")
def fallback_image(template_project: Path, built: BuildResult, base_image: str) -> Iterator[BuildResult]:
    """The built template, copied with its frozen requirements (so only the last layers are new)."""
    root = template_project.parent / "fallback-demo"
    shutil.copytree(template_project, root, ignore=shutil.ignore_patterns(".git"))
    solution = (root / "solution.py").read_text()
    (root / "solution.py").write_text(solution + FLAKY_MAIN)
    config = (root / "mlship.yaml").read_text().replace("workers: auto", "workers: 1")
    (root / "mlship.yaml").write_text(config + FALLBACK)
    tag = f"mlship-test-fallback:{uuid.uuid4().hex[:12]}"
    result = build_project(root, tag=tag, base_image=base_image, version="v3")
    print(
        f"\nfallback image build: {result.seconds:.1f} s, requirements reused: {result.requirements_reused}"
    )
    yield result
    image.remove(tag)


def marked_row(project: Path, value: float) -> dict[str, Any]:
    import pandas as pd

    row = pd.read_csv(project / "data" / "test.csv").drop(columns=["label"]).iloc[0].to_dict()
    return {**{k: float(v) for k, v in row.items()}, "mean radius": value}


def fallback_counts(url: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    families = text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text)
    return {
        s.labels["reason"]: s.value for f in families for s in f.samples if s.name == "mlship_fallback_total"
    }


def test_the_spare_answers_errors_timeouts_and_an_open_circuit_in_the_image(
    fallback_image: BuildResult,
) -> None:
    normal, raising, slow = (marked_row(fallback_image.project, value) for value in (12.0, RAISES, SLOW))
    with image.run(fallback_image.image_ref, read_only=True, tmpfs={"/tmp": "rw,size=64m"}) as running:
        image.wait_ready(running, timeout=120)
        url = f"{running.url}/predict"
        with httpx.Client(timeout=10) as client:

            def ask(row: dict[str, Any]) -> httpx.Response:
                answer = client.post(url, json=row)
                assert answer.status_code == 200, answer.text
                return answer

            for _ in range(3):
                assert "x-model-fallback" not in ask(normal).headers
            assert ask(normal).headers["x-model-version"] == "v3"
            answer = ask(raising)
            assert answer.headers["x-model-fallback"] == "error"
            assert answer.headers["x-model-version"] == "v3+Spare"
            assert answer.json()["model_version"] == "v3+Spare" and "probabilities" not in answer.json()
            started = time.perf_counter()
            answer = ask(slow)
            elapsed = time.perf_counter() - started
            assert answer.headers["x-model-fallback"] == "timeout"
            assert 0.3 <= elapsed < 0.35, elapsed  # deadline_ms + 50 ms
            time.sleep(0.4)  # the main call ends
            assert "x-model-fallback" not in ask(normal).headers  # 2 failures: still closed
            assert ask(raising).headers["x-model-fallback"] == "error"  # the third opens it
            assert ask(normal).headers["x-model-fallback"] == "circuit-open"
            time.sleep(1.1)  # cool-down
            assert "x-model-fallback" not in ask(normal).headers  # the trial succeeds: closed
            assert "x-model-fallback" not in ask(normal).headers
        assert fallback_counts(running.url) == {"error": 2.0, "timeout": 1.0, "circuit-open": 1.0}
