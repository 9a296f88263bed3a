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
    canary: Annotated[
        int | None,
        typer.Option(
            "--canary", help="Leave live alone; the release takes this % of requests (mlship canary)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Release the model: nothing is pushed unless the gate, the build and the image's own test all pass."""
    from mlship.release.deploy import deploy as run_deploy

    options: dict[str, Any] = {
        "base_image": base_image,
        "force": force,
        "reason": reason,
        "allow_dirty": allow_dirty,
    }
    if canary is None:
        finish(run_deploy(project, registry_host=registry, **options), as_json, _render)
        return
    from mlship.ops.k8s.rollout import deploy_canary

    finish(deploy_canary(project, registry, canary, **options), as_json, _render_canary)


def _render_canary(result: Any) -> None:
    from mlship.cli.rollout import render_rollout

    _render(result.deploy)
    if result.canary is None:
        console.print("   nothing was live: this release is live, the next one can be a canary")
    else:
        render_rollout(result.canary)


def _render(result: Any) -> None:
    previous = result.previous_live or "(nothing)"
    console.print(f"\nTo {result.repository}")
    where = "live" if "live" in result.tags else f"released (live stays {previous})"
    console.print(f"   {previous} → [bold green]{result.version}[/]  {where}  {result.digest}")
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
