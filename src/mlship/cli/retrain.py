"""`mlship retrain`: guard new data, train a challenger, compare it with the live champion, bless it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from mlship.cli._common import JsonFlag, boundary, finish
from mlship.console import console

if TYPE_CHECKING:
    from mlship.ops.factory.retrain import RetrainResult


@boundary
def retrain(
    data: Annotated[str, typer.Option("--data", help="The new training rows (CSV/Parquet, a path or URL).")],
    project: Annotated[Path, typer.Argument(help="The project folder (holding mlship.yaml).")] = Path("."),
    registry: Annotated[
        str | None, typer.Option(help="Registry host[:port]; default image.registry.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Retrain on new data behind data guards, and bless the challenger only if it beats the live model.

    Exit codes: 0 blessed (artefacts and blessing.json written; release with `mlship deploy`), 11 a data
    guard breached (nothing written), 5 the challenger misses a threshold or does not beat the live release
    (nothing written, the registry untouched), 4 training or the model failed, 8 registry error.
    Example: `mlship retrain --data s3-export/2026-12-03.parquet`.
    """
    from mlship.ops.factory.retrain import retrain as run_retrain

    result = run_retrain(project, data, registry=registry)
    finish(result, as_json, _render, result.exit_code)


def _render(result: RetrainResult) -> None:
    from rich.table import Table

    passed = sum(guard.passed for guard in result.guards)
    console.print(f"[green]✓[/] data guards: {passed}/{len(result.guards)} passed on {result.rows:,} rows")
    table = Table(title=f"held-out rows: {result.holdout_rows:,}")
    for column in ("metric", "challenger", "champion", "rule", "verdict"):
        table.add_column(column)
    for row in result.comparison:
        table.add_row(
            row.metric,
            "undefined" if row.challenger is None else f"{row.challenger:.4f}",
            "-" if row.champion is None else f"{row.champion:.4f}",
            f"≥ +{row.min_absolute_change:g} abs, ≥ +{row.min_relative_change:.1%} rel",
            "[green]pass[/]" if row.passed else "[bold red]FAIL[/]",
        )
    console.print(table)
    if result.blessed:
        console.print(
            f"[green]✓ {escape(result.reason)}[/] → {escape(result.blessing or '')}", soft_wrap=True
        )
        console.print("[dim]release it: mlship deploy[/]")
    else:
        console.print(f"[bold red]refused:[/] {escape(result.reason)} (nothing written)", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(retrain)
