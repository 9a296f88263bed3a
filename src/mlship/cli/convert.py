"""`mlship convert`: convert a notebook again into an existing project (its solution.py and tests are kept
unless --force)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlship.cli._common import JsonFlag, boundary, finish
from mlship.console import console
from mlship.errors import UsageError


@boundary
def convert(
    project: Annotated[Path, typer.Argument(help="The project folder (holding mlship.yaml).")] = Path("."),
    notebook: Annotated[Path, typer.Option("--notebook", help="The notebook to convert (.ipynb).")] = Path(),
    force: Annotated[
        bool, typer.Option("--force", help="Also regenerate solution.py, the tests and the README.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds the whole notebook may run.")
    ] = 900.0,
    cell_timeout: Annotated[
        float,
        typer.Option("--cell-timeout", min=0, help="Seconds one cell may run (0: no limit of its own)."),
    ] = 0.0,
    as_json: JsonFlag = False,
) -> None:
    """Run the notebook again and refresh the project: model/, data/test.csv, schema.json, thresholds, golden
    predictions, requirements.in. solution.py and tests/test_solution.py are kept (and checked against the
    new model) unless --force.

    Example: `mlship convert fraud-detector --notebook notebooks/fraud.ipynb`.
    """
    from mlship.convert import convert_notebook
    from mlship.project.config import CONFIG_FILE, load_project

    if notebook == Path():  # not given
        raise UsageError(
            "give the notebook to convert with --notebook NB.ipynb",
            hint=f"e.g. 'mlship convert {project} --notebook analysis.ipynb'",
        )
    if not (project / CONFIG_FILE).is_file():
        raise UsageError(
            f"{project} has no {CONFIG_FILE}: it is not an mlship project",
            hint=f"create one with 'mlship init --from-notebook {notebook} --dir {project}'",
        )
    name = load_project(project).config.name
    result = convert_notebook(
        notebook,
        project,
        name=name,
        force=force,
        timeout_s=timeout,
        cell_timeout_s=cell_timeout or None,
        keep_code=True,
    )
    finish(result, as_json, lambda converted: console.print(converted.summary(), soft_wrap=True))


def register(app: typer.Typer) -> None:
    app.command()(convert)
