"""`mlship hooks install`: run the release gate before every `git push`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mlship.cli._common import JsonFlag, boundary, finish
from mlship.console import console

hooks_app = typer.Typer(help="Git hooks that run the release gate.", no_args_is_help=True)


@hooks_app.command("install")
@boundary
def install(
    project: Annotated[Path, typer.Argument(help="Project folder.")] = Path("."),
    force: Annotated[
        bool, typer.Option("--force", help="Replace a pre-push hook mlship did not write.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Install a git pre-push hook that runs `mlship test` (skip once with `git push --no-verify`)."""
    from mlship.project.hooks import install_pre_push

    def render(result: Any) -> None:
        console.print(
            f"[green]✓[/] pre-push hook installed at {result.hook}: 'mlship test' runs before every push"
        )

    finish(install_pre_push(project, force=force), as_json, render)


def register(app: typer.Typer) -> None:
    app.add_typer(hooks_app, name="hooks")
