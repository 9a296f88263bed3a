"""`mlship doctor`: check Python, pip-tools, mlship.yaml, the container engine and the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlship.cli._common import JsonFlag, boundary, finish
from mlship.console import console


@boundary
def doctor(
    project: Annotated[Path, typer.Argument(help="Project folder (for its mlship.yaml).")] = Path("."),
    registry: Annotated[str | None, typer.Option(help="Registry to check, e.g. 127.0.0.1:5000.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check that this machine can test, build and ship: one row per check, with a fix for each failure."""
    from mlship.doctor import DoctorReport, run_doctor

    report = run_doctor(project, registry)

    def render(result: DoctorReport) -> None:
        from rich.table import Table

        table = Table(title="mlship doctor")
        for column in ("check", "status", "detail", "fix"):
            table.add_column(column, overflow="fold")
        marks = {"ok": "[green]ok[/]", "fail": "[red]FAIL[/]", "skip": "[dim]skip[/]"}
        for check in result.checks:
            table.add_row(check.name, marks[check.status], check.detail, check.fix or "")
        console.print(table)

    finish(report, as_json, render, report.exit_code)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
