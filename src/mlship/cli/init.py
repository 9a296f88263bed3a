"""`mlship init`: a new project from the template, or from a notebook."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mlship.cli._common import JsonFlag, boundary, finish
from mlship.console import console
from mlship.errors import UsageError


@boundary
def init(
    name: Annotated[str | None, typer.Argument(help="Project (and image) name, e.g. fraud-detector.")] = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to create it (default ./NAME).")
    ] = None,
    from_notebook: Annotated[
        Path | None, typer.Option("--from-notebook", help="Convert this notebook into the project.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Write into a non-empty folder.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds the notebook may run in all.")] = 900,
    as_json: JsonFlag = False,
) -> None:
    """Create a project: from the template (trains a small model offline) or from a notebook.

    Examples: `mlship init demo`, `mlship init --from-notebook fraud.ipynb fraud-detector`.
    """
    if from_notebook is not None:
        from mlship.convert import convert_notebook

        if not from_notebook.is_file():
            raise UsageError(
                f"notebook {from_notebook} does not exist", hint="give the path of an .ipynb file"
            )
        target = directory or Path(name or from_notebook.stem.replace("_", "-").lower())
        result: Any = convert_notebook(from_notebook, target, name=name, force=force, timeout_s=timeout)
        finish(result, as_json, _render_conversion)
        return
    if name is None:
        raise UsageError("give a project name, or --from-notebook NB.ipynb", hint="e.g. 'mlship init demo'")
    from mlship.project.scaffold import create_project

    finish(create_project(name, directory, force=force), as_json, _render_project)


def _render_project(result: Any) -> None:
    console.print(
        f"[green]✓[/] created [bold]{result.name}[/] in {result.project} ({len(result.files)} files)"
    )
    console.print("next: " + " && ".join(result.next_steps))


def _render_conversion(result: Any) -> None:
    summary = getattr(result, "summary", None)
    console.print(summary() if callable(summary) else result)


def register(app: typer.Typer) -> None:
    app.command()(init)
