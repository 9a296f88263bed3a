"""`mlship test`: the project's tests, then the release gate on the test data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from mlship.cli._common import JsonFlag, boundary, finish
from mlship.console import console

if TYPE_CHECKING:
    from mlship.gate.evaluate import GateResult
    from mlship.gate.testing import TestReport


@boundary
def test(
    project: Annotated[Path, typer.Argument(help="The project folder (holding mlship.yaml).")] = Path("."),
    junit: Annotated[Path | None, typer.Option("--junit", help="Also write JUnit XML here, for CI.")] = None,
    skip_tests: Annotated[
        bool, typer.Option("--skip-tests", help="Run only the gate, not the project's tests.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Run the project's tests, then score the model on the test data against the thresholds in mlship.yaml.

    Exit codes: 0 passed, 4 tests failed or the model crashed, 5 a metric missed its threshold, 3 config
    invalid, 1 test data missing or not matching schema.json. With `fallback:` in mlship.yaml the spare
    model is scored too, against its own thresholds (exit 5 naming it when it misses one).
    Example: `mlship test --junit report.xml`.
    """
    from mlship.gate.testing import run_test

    report = run_test(project, skip_tests=skip_tests, junit=junit)
    finish(report, as_json, _render, report.exit_code)


def _render(report: TestReport) -> None:
    tests = report.pytest
    if tests is None:
        console.print("[dim]project tests: skipped (--skip-tests)[/]")
    elif tests.total == 0:
        console.print("[yellow]project tests: none found[/] (add tests/test_*.py)")
    else:
        mark = "[green]✓[/]" if tests.ok else "[red]✗[/]"
        console.print(f"{mark} project tests: {tests.summary()} in {tests.duration:.1f}s")
        for failure in tests.failures:
            console.print(f"  [red]•[/] {escape(failure)}", soft_wrap=True)
    gate = report.gate
    if gate is None:
        console.print("[red]gate not run[/]: fix the project's tests first")
        return
    console.print(
        f"[bold]Release gate[/] · {gate.rows:,} rows of {escape(gate.data)} · {gate.task}", soft_wrap=True
    )
    _metrics(gate, "")
    for warning in gate.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    spare = report.fallback
    if spare is not None:
        console.print(f"[bold]Fallback model {spare.model}[/] · its own thresholds (fallback.metrics)")
        _metrics(spare, f"fallback model {spare.model}: ")
    if report.passed:
        console.print(f"[green]✓ gate passed[/] in {gate.seconds:.1f}s (data sha256 {gate.data_sha256[:12]})")
    if report.junit is not None:
        console.print(f"[dim]JUnit XML: {report.junit}[/]")


def _metrics(gate: GateResult, prefix: str) -> None:
    from rich.table import Table

    table = Table()
    for column in ("metric", "value", "threshold", "verdict"):
        table.add_column(column, justify="right" if column in ("value", "threshold") else "left")
    for metric in gate.metrics:
        value = "undefined" if metric.value is None else f"{metric.value:.4f}"
        verdict = "[green]pass[/]" if metric.passed else "[bold red]FAIL[/]"
        name = f"{metric.name} [dim]({metric.detail})[/]" if metric.detail else metric.name
        table.add_row(name, value, metric.threshold, verdict)
    console.print(table)
    for metric in gate.failed:
        console.print(f"[bold red]below baseline:[/] {prefix}{escape(metric.explain())}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(test)
