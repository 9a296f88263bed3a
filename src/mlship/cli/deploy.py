"""`mlship deploy`: test → build → verify the image over HTTP → version → push → move live."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mlship.cli._common import JsonFlag, boundary, finish
from mlship.console import console


@boundary
def deploy(
    project: Annotated[Path, typer.Argument(help="Project folder.")] = Path("."),
    registry: Annotated[str | None, typer.Option(help="Registry host[:port], e.g. 127.0.0.1:5000.")] = None,
    base_image: Annotated[str | None, typer.Option("--base-image", help="Override image.base.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Release even if worse than live (needs --reason).")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why --force: recorded on the release.")
    ] = None,
    allow_dirty: Annotated[bool, typer.Option("--allow-dirty", help="Release uncommitted changes.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Release the model: nothing is pushed unless the gate, the build and the image's own test all pass."""
    from mlship.release.deploy import deploy as run_deploy

    result = run_deploy(
        project,
        registry_host=registry,
        base_image=base_image,
        force=force,
        reason=reason,
        allow_dirty=allow_dirty,
    )
    finish(result, as_json, _render)


def _render(result: Any) -> None:
    previous = result.previous_live or "(nothing)"
    console.print(f"\nTo {result.repository}")
    console.print(f"   {previous} → [bold green]{result.version}[/]  live  {result.digest}")
    for tag in result.tags:
        console.print(f"   [dim]* {tag}[/]")
    for metric in result.metrics:
        live = next((row for row in result.against_live if row.metric == metric.name), None)
        versus = f", live {live.live:.4f} ({live.change:+.4f})" if live else ""
        console.print(f"   {metric.name} {metric.value:.4f} (min {metric.min}){versus}")
    console.print(
        f"   verified over HTTP: {result.verify.rows} rows, p50 {result.verify.p50_ms:.1f} ms, "
        f"p99 {result.verify.p99_ms:.1f} ms"
    )
    if result.forced_reason:
        console.print(f"   [yellow]forced:[/] {result.forced_reason}")


def register(app: typer.Typer) -> None:
    app.command()(deploy)
