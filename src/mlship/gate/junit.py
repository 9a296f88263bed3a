"""JUnit XML for CI systems: one testcase per gate metric, one for the pytest summary, plus the project's own.

<testsuites name="mlship test">
  <testsuite name="mlship.gate">    one <testcase> per metric (failure: "f1 = 0.81 is below the minimum 0.9")
  <testsuite name="mlship.pytest">  one <testcase> "pytest summary" (failure: "1 failed, 3 passed")
  <testsuite name="…">              the project's own testcases, as pytest wrote them
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

from mlship.errors import MlshipError, UsageError

if TYPE_CHECKING:
    from mlship.gate.evaluate import GateResult
    from mlship.gate.pytest_result import PytestResult


def _suite(parent: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(parent, "testsuite", name=name)


def _case(suite: ET.Element, classname: str, name: str, seconds: float = 0.0) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{seconds:.3f}")


def _gate_suite(
    root: ET.Element,
    gate: GateResult | None,
    error: MlshipError | None,
    skipped_reason: str | None,
    spare: GateResult | None = None,
) -> None:
    suite = _suite(root, "mlship.gate")
    if gate is not None:
        _metric_cases(suite, gate, "mlship.gate", "")
        if spare is not None:  # the fallback model's own gate (fallback.metrics)
            _metric_cases(suite, spare, "mlship.gate.fallback", f"fallback {spare.model}: ")
        if gate.warnings:
            ET.SubElement(suite, "system-err").text = "\n".join(gate.warnings)
        suite.set("time", f"{gate.seconds:.3f}")
    elif error is not None:
        case = _case(suite, "mlship.gate", "gate")
        ET.SubElement(case, "error", message=error.message, type=type(error).__name__).text = (
            error.message + (f"\nhint: {error.hint}" if error.hint else "")
        )
    else:
        case = _case(suite, "mlship.gate", "gate")
        ET.SubElement(case, "skipped", message=skipped_reason or "not run")


def _metric_cases(suite: ET.Element, gate: GateResult, classname: str, prefix: str) -> None:
    for metric in gate.metrics:
        case = _case(suite, classname, prefix + metric.name)
        explained = prefix + metric.explain()
        if not metric.passed:
            ET.SubElement(
                case, "failure", message=explained, type="BelowBaseline"
            ).text = f"{explained} (threshold {metric.threshold}, {gate.rows} rows of {gate.data})"
        else:
            ET.SubElement(case, "system-out").text = explained


def _pytest_suite(root: ET.Element, tests: PytestResult | None, skip_tests: bool) -> None:
    suite = _suite(root, "mlship.pytest")
    case = _case(suite, "mlship.pytest", "pytest summary", tests.duration if tests else 0.0)
    if tests is None:
        ET.SubElement(case, "skipped", message="--skip-tests" if skip_tests else "not run")
        return
    ET.SubElement(case, "system-out").text = f"{tests.summary()}\n{tests.output_tail}".strip()
    if not tests.ok:
        ET.SubElement(
            case, "failure", message=f"the project's tests: {tests.summary()}", type="TestsFailed"
        ).text = "\n".join(tests.failures)


def _project_suites(root: ET.Element, tests: PytestResult | None) -> None:
    if tests is None or tests.junit_path is None or not tests.junit_path.is_file():
        return
    try:
        project = ET.parse(tests.junit_path).getroot()  # noqa: S314 - pytest's own output file
    except ET.ParseError:
        return
    for suite in [project] if project.tag == "testsuite" else list(project.iter("testsuite")):
        suite.set("name", f"project.{suite.get('name', 'pytest')}")
        root.append(suite)


def _count(root: ET.Element) -> None:
    for suite in root.iter("testsuite"):
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        for outcome, attribute in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            suite.set(attribute, str(sum(1 for case in cases if case.find(outcome) is not None)))


def write_junit(
    path: Path,
    *,
    tests: PytestResult | None,
    gate: GateResult | None,
    error: MlshipError | None,
    skip_tests: bool = False,
    fallback: GateResult | None = None,
) -> Path:
    """Write the JUnit XML of one `mlship test` run to `path` (folders are created)."""
    root = ET.Element("testsuites", name="mlship test")
    reason = "the project's tests failed" if tests is not None and not tests.ok else None
    _gate_suite(root, gate, error, reason, fallback)
    _pytest_suite(root, tests, skip_tests)
    _project_suites(root, tests)
    _count(root)
    ET.indent(root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    except OSError as problem:
        raise UsageError(
            f"--junit {path}: cannot be written: {problem}", hint="choose a writable path"
        ) from problem
    return path
