"""`mlship score`: batch predictions over CSV or Parquet of any size, in chunks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from mlship.cli._common import JsonFlag, boundary, finish
from mlship.console import console

if TYPE_CHECKING:
    from mlship.ops.factory.result import ScoreResult


@boundary
def score(
    data: Annotated[Path, typer.Argument(help="Input rows: a CSV or Parquet file (or a folder of Parquet).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the predictions (Parquet).")],
    version: Annotated[
        str | None,
        typer.Option(
            "--version", help="Score with this release's model (vN or live), read from the registry."
        ),
    ] = None,
    use_project: Annotated[
        bool, typer.Option("--project", help="Score with the project's own model (the default).")
    ] = False,
    directory: Annotated[
        Path, typer.Option("--dir", "-C", help="The project folder (holding mlship.yaml).")
    ] = Path("."),
    registry: Annotated[
        str | None, typer.Option(help="Registry host[:port]; default image.registry.")
    ] = None,
    rejects: Annotated[
        Path | None, typer.Option(help="Where refused rows go, with the reason (default OUT.rejects.csv).")
    ] = None,
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", help="Rows per chunk: bounds the memory used.")
    ] = 100_000,
    engine: Annotated[
        str, typer.Option(help="local (in a child process) or spark (local[2] or SPARK_MASTER).")
    ] = "local",
    as_json: JsonFlag = False,
) -> None:
    """Predict every row of DATA and write OUT (Parquet: row_id, prediction, model_version).

    Rows that do not match schema.json are never dropped silently: they go to the rejects file with the
    reason. Exit codes: 0 done (even with rejects; see the counts), 1 input unreadable or a column missing,
    4 the model failed, 8 registry error. Example: `mlship score customers.parquet --out scores.parquet`.
    """
    from mlship.errors import UsageError
    from mlship.ops.factory.score import score as run_score

    if use_project and version is not None:
        raise UsageError(
            "--project and --version are exclusive", hint="pick the project's model or a release"
        )
    if engine not in ("local", "spark"):
        raise UsageError(f"--engine must be local or spark, got '{engine}'")
    result = run_score(
        data,
        out,
        project=directory,
        version=version,
        registry=registry,
        rejects=rejects,
        chunk_rows=chunk_rows,
        engine="spark" if engine == "spark" else "local",
    )
    finish(result, as_json, _render)


def _render(result: ScoreResult) -> None:
    console.print(
        f"[green]✓[/] scored {result.scored:,} of {result.rows:,} rows with {escape(result.model_version)} "
        f"({result.engine}) in {result.seconds:.1f}s → {escape(result.output)}",
        soft_wrap=True,
    )
    if result.rejected:
        by_column = ", ".join(f"{name} {count:,}" for name, count in sorted(result.reject_reasons.items()))
        console.print(
            f"[yellow]rejected {result.rejected:,} rows[/] ({escape(by_column)}) → {escape(result.rejects)}",
            soft_wrap=True,
        )


def register(app: typer.Typer) -> None:
    app.command()(score)
