"""`mlship test`: the project's own pytest suite, then the release gate; and the JUnit XML CI systems show.

Exit codes: 0 everything passed, 4 the project's tests failed (or the model crashed), 5 a metric missed its
threshold, 3 mlship.yaml or schema.json is invalid, 1 the test data is missing or does not match the schema.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from pydantic import BaseModel

from mlship.console import console
from mlship.errors import ExitCode, MlshipError
from mlship.gate.evaluate import GateResult, run_gate
from mlship.gate.pytest_result import PytestResult
from mlship.project.config import Project, load_project

PYTEST_MIN_TIMEOUT_S = 600.0
_CONFIG_FILES = ("pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")


class TestReport(BaseModel):
    """The outcome of `mlship test`: pytest counts, the gate's metrics, and the exit code CI branches on."""

    __test__ = False  # not a pytest class

    pytest: PytestResult | None
    gate: GateResult | None
    fallback: GateResult | None = None  # the spare's own gate (mlship.yaml fallback.metrics)
    passed: bool
    exit_code: int
    junit: Path | None = None


def _tests_folder(project: Project) -> Path | None:
    folder = project.root / "tests"
    return folder if folder.is_dir() else None


def _counts(junit: Path) -> PytestResult:
    root = ET.parse(junit).getroot()  # noqa: S314 - pytest's own output file
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    result = PytestResult(junit_path=junit)
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for suite in suites:
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        for case in suite.iter("testcase"):
            for outcome in ("failure", "error"):
                found = case.find(outcome)
                if found is not None:
                    message = (found.get("message") or "").strip().splitlines()
                    name = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
                    result.failures.append(f"{name}: {message[0][:200]}" if message else name)
    result.failed, result.errors, result.skipped = totals["failures"], totals["errors"], totals["skipped"]
    result.passed = totals["tests"] - result.failed - result.errors - result.skipped
    return result


def _pytest_command(project: Project, junit: Path, folder: Path) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        f"--rootdir={project.root}",
    ]
    if not any((project.root / name).is_file() for name in _CONFIG_FILES):
        # without a config of its own, pytest would look for one in the folders above the project
        empty = junit.parent / "pytest.ini"
        empty.write_text("[pytest]\n", encoding="utf-8")
        command.append(f"-c={empty}")
    return [*command, str(folder)]


def run_project_tests(project: Project, work_dir: Path | None = None) -> PytestResult:
    """Run the project's tests/ with pytest in a subprocess of this interpreter and count the outcomes.

    The JUnit file pytest writes is kept in `work_dir` (a new temporary folder when not given).
    """
    folder = _tests_folder(project)
    if folder is None:
        return PytestResult()
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="mlship-pytest-"))
    junit = work / "project-tests.xml"
    timeout = max(project.config.evaluation.timeout_s, PYTEST_MIN_TIMEOUT_S)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(project.root), os.environ.get("PYTHONPATH")])),
    }
    started = time.perf_counter()
    process = subprocess.Popen(
        _pytest_command(project, junit, folder),
        cwd=project.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return PytestResult(
            errors=1,
            duration=round(time.perf_counter() - started, 3),
            failures=[f"pytest: the tests took longer than {timeout:g} s and were stopped"],
        )
    text = output.decode("utf-8", "replace").strip()
    tail = "\n".join(text.splitlines()[-15:])
    result = _counts(junit) if junit.is_file() else PytestResult()
    result.duration = round(time.perf_counter() - started, 3)
    result.output_tail = tail
    # pytest: 0 passed, 1 tests failed, 5 no tests; anything else (or no report at all) is an error of its own
    broken = process.returncode not in (0, 1, 5) or (process.returncode == 1 and not junit.is_file())
    if broken and result.ok:
        last = text.splitlines()[-1] if text else f"exit code {process.returncode}"
        result.errors += 1
        result.failures.append(f"pytest: {last[:200]}")
    return result


def run_test(
    project_dir: Path | str = ".", *, skip_tests: bool = False, junit: Path | None = None
) -> TestReport:
    """Run the project's tests, then the gate; write JUnit XML to `junit` if given.

    Returns the report (exit code 0, 4 or 5); raises the gate's MlshipError (data, model crash, config),
    after writing the JUnit XML that records it.
    """
    from mlship.gate.junit import write_junit

    try:
        project = load_project(project_dir)
    except MlshipError as invalid:
        if junit is not None:  # CI still gets a report that says why nothing ran
            write_junit(junit, tests=None, gate=None, error=invalid, skip_tests=skip_tests)
        raise
    with tempfile.TemporaryDirectory(prefix="mlship-test-") as work:
        tests: PytestResult | None = None
        if not skip_tests:
            with console.status("Running the project's tests…"):
                tests = run_project_tests(project, Path(work))
        gate: GateResult | None = None
        spare: GateResult | None = None
        error: MlshipError | None = None
        if tests is None or tests.ok:
            try:
                with console.status(f"Scoring {project.config.evaluation.data}…"):
                    gate = run_gate(project)
                if project.config.fallback is not None:
                    with console.status(f"Scoring the fallback model {project.config.fallback.model}…"):
                        spare = run_gate(project, spare=True)
            except MlshipError as raised:
                error = raised
        if junit is not None:
            write_junit(junit, tests=tests, gate=gate, error=error, skip_tests=skip_tests, fallback=spare)
        if error is not None:
            raise error
        if tests is not None:
            tests = tests.model_copy(update={"junit_path": None})  # it was in the temporary folder
    if tests is not None and not tests.ok:
        code = ExitCode.TESTS_FAILED
    elif (gate is not None and not gate.passed) or (spare is not None and not spare.passed):
        code = ExitCode.BELOW_BASELINE
    else:
        code = ExitCode.OK
    return TestReport(
        pytest=tests,
        gate=gate,
        fallback=spare,
        passed=code == ExitCode.OK,
        exit_code=int(code),
        junit=junit.resolve() if junit is not None else None,
    )
