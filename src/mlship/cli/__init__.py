"""The `mlship` command line: one small module per command, each a thin layer over a core function."""

from __future__ import annotations

from typing import Annotated

import typer

from mlship import __version__
from mlship.cli import _common

app = typer.Typer(
    name="mlship",
    help="Ship a notebook's model as a tested, versioned container image with one command.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlship {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Ship a notebook's model as a tested, versioned container image with one command."""
    _common.STATE.debug = debug


# One module per command, each exposing register(app); add a command by adding its module's name here.
COMMANDS = (
    "init",
    "convert",
    "test",
    "build",
    "serve",
    "doctor",
    "hooks",
    "deploy",
    "releases",
    "verify",
    "rollout",
    "monitor",
    "score",
    "retrain",
)


def _register() -> None:
    from importlib import import_module

    for command in COMMANDS:
        import_module(f"mlship.cli.{command}").register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    app()
