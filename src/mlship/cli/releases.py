"""`mlship releases` and `mlship rollback`: what the registry holds, and moving `live` back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mlship.cli._common import JsonFlag, boundary, finish
from mlship.console import console

ProjectArg = Annotated[Path, typer.Option("--project", "-p", help="Project folder (for name and registry).")]
RegistryOpt = Annotated[str | None, typer.Option(help="Registry host[:port]; default image.registry.")]


def _target(project: Path, registry: str | None) -> tuple[Any, str]:
    from mlship.adapters.registry import Registry
    from mlship.project.config import load_project
    from mlship.release.versions import registry_host

    loaded = load_project(project)
    host = registry_host(loaded, registry)
    return Registry(host), loaded.config.name


@boundary
def releases(
    project: ProjectArg = Path("."), registry: RegistryOpt = None, as_json: JsonFlag = False
) -> None:
    """List the released versions with their metrics; the live one is marked."""
    from mlship.release.versions import list_releases

    client, repo = _target(project, registry)
    found = list_releases(client, repo)

    def render(rows: Any) -> None:
        from rich.table import Table

        table = Table(title=f"{client.host}/{repo}")
        for column in ("version", "live", "created", "git", "metrics", "digest"):
            table.add_column(column, overflow="fold")
        for row in rows:
            metrics = ", ".join(f"{k} {v:.4f}" for k, v in row.metrics.items())
            table.add_row(
                row.version,
                "[green]● live[/]" if row.live else "",
                row.created or "",
                (row.revision or "")[:12],
                metrics,
                (row.digest or "")[:19],
            )
        console.print(table if rows else f"{client.host}/{repo} has no releases yet")

    finish([r.model_dump(mode="json") for r in found] if as_json else found, as_json, render)


@boundary
def rollback(
    version: Annotated[
        str | None, typer.Argument(help="Version to make live (default: the previous one).")
    ] = None,
    project: ProjectArg = Path("."),
    registry: RegistryOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Point `live` at an earlier version, without rebuilding or pulling."""
    from mlship.release.versions import rollback as move_live

    client, repo = _target(project, registry)

    def render(result: Any) -> None:
        console.print(
            f"[green]✓[/] {result.repository}: live {result.previous or '(nothing)'} → {result.live}"
        )

    finish(move_live(client, repo, version), as_json, render)


def register(app: typer.Typer) -> None:
    app.command()(releases)
    app.command()(rollback)
