"""Run schemathesis (v4, its CLI) against a running service and read back what it sent and got.

Shared by the in-process test (a real uvicorn process on loopback) and the container test. The run uses
every check (``--checks all``), the examples, coverage and fuzzing phases, at most ``max_examples`` cases
per operation and pass, and stops after ``max_seconds``; its NDJSON report is parsed so that a test can
assert on every answer, not only on the exit code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

PHASES = ("examples", "coverage", "fuzzing")

# negative_data_rejection: schema-violating data must be refused with one of these. 413 is how the service
# refuses a batch over serving.max_batch_rows (the OpenAPI document states maxItems and lists 413), 404 an
# unknown /docs/static asset (the path parameter is an enum), 405 a method the route does not have.
# Narrower than schemathesis's default, which also accepts 401, 403, 406, 409, 428, 429 and any 5xx.
CONFIG = """\
[checks.negative_data_rejection]
expected-statuses = ["400", "404", "405", "413", "415", "422"]
"""


@dataclass
class SchemathesisRun:
    """What one schemathesis run did: exit code, console output and every recorded answer."""

    exit_code: int
    output: str
    statuses: Counter[tuple[str, str, int]] = field(default_factory=Counter)  # (phase, "POST /predict", 200)
    failed_checks: list[dict[str, Any]] = field(default_factory=list)
    # phase name -> the outcomes of its passes ("success", "failure", "skip"): with --max-time the fuzzing
    # phase runs again until the time is spent, and the pass cut short by it is a "skip"
    phases: dict[str, set[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # requests that got no answer at all

    @property
    def cases(self) -> int:
        return sum(self.statuses.values())

    def by_operation(self, label: str) -> Counter[int]:
        """Status code counts for one operation (such as ``"POST /predict"``) over all phases."""
        counts: Counter[int] = Counter()
        for (_, operation, status), count in self.statuses.items():
            if operation == label:
                counts[status] += count
        return counts

    def server_errors(self) -> dict[tuple[str, str, int], int]:
        return {key: count for key, count in self.statuses.items() if key[2] >= 500}

    def summary(self) -> str:
        """The console output's failure section (or its tail), for assertion messages."""
        text = self.output
        start = text.find("FAILURES")
        return text[start:][:6000] if start >= 0 else text[-3000:]


def require_schemathesis() -> None:
    """Skip without schemathesis>=4 (a dev dependency) — or fail, under MLSHIP_REQUIRE_INTEGRATION=1 (CI)."""
    try:
        import schemathesis
    except ImportError:
        version = None
    else:
        version = getattr(schemathesis, "__version__", "0")
    if version is None or int(str(version).split(".")[0]) < 4:
        reason = f"schemathesis>=4 is not installed (found {version}); pip install 'schemathesis>=4'"
        if os.environ.get("MLSHIP_REQUIRE_INTEGRATION") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def run_schemathesis(
    base_url: str,
    workdir: Path,
    *,
    max_examples: int,
    max_seconds: int,
    seed: int = 20240601,
    workers: int = 1,
) -> SchemathesisRun:
    """Run ``schemathesis run BASE_URL/openapi.json`` with every check and read its NDJSON report."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG)
    report = workdir / "report.ndjson"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{base_url.rstrip('/')}/openapi.json",
        "--checks",
        "all",
        "--phases",
        ",".join(PHASES),
        "--max-examples",
        str(max_examples),
        "--max-time",
        str(max_seconds),
        "--seed",
        str(seed),
        "--workers",
        str(workers),
        "--request-timeout",
        "10",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
    ]
    process = subprocess.run(
        command,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=max_seconds + 120,  # schemathesis stops by itself at max_seconds; this is the backstop
    )
    run = SchemathesisRun(process.returncode, process.stdout + process.stderr)
    if report.exists():
        _read_report(report, run)
    return run


def _read_report(path: Path, run: SchemathesisRun) -> None:
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if "PhaseFinished" in event:
            finished = event["PhaseFinished"]
            run.phases.setdefault(finished["phase"]["name"], set()).add(finished["status"])
            continue
        scenario = event.get("ScenarioFinished")
        if scenario is None:
            continue
        recorder = scenario["recorder"]
        for interaction in (recorder.get("interactions") or {}).values():
            response = interaction.get("response")
            if response is None:
                run.errors.append(json.dumps(interaction.get("request"))[:300])
                continue
            run.statuses[(scenario["phase"], recorder["label"], int(response["status_code"]))] += 1
        for case_id, checks in (recorder.get("checks") or {}).items():
            for check in checks:
                if check["status"] != "success":
                    run.failed_checks.append({"case": case_id, "label": recorder["label"], **check})


def assert_clean(run: SchemathesisRun, *, min_cases: int) -> None:
    """Zero failures, zero 5xx, every phase run, and both accepted and refused predictions."""
    assert run.exit_code == 0, f"schemathesis exit code {run.exit_code}:\n{run.summary()}"
    assert not run.failed_checks, run.failed_checks[:10]
    assert not run.server_errors(), run.server_errors()
    assert not run.errors, run.errors[:5]
    for phase in PHASES:
        outcomes = run.phases.get(phase, set())
        assert "success" in outcomes and "failure" not in outcomes, (phase, run.phases)
    assert run.cases >= min_cases, f"only {run.cases} requests were made:\n{run.summary()}"
    predict = run.by_operation("POST /predict")
    assert predict[200] > 0 and predict[422] > 0, predict  # valid rows were served, broken ones refused
    fuzzed = {phase for phase, label, _ in run.statuses if label == "POST /predict"}
    assert set(PHASES) <= fuzzed, fuzzed
