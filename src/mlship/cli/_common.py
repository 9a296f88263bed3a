"""What every command shares: the --json option and the one error boundary."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.markup import escape

from mlship.console import console, emit_json
from mlship.errors import ExitCode, MlshipError

P = ParamSpec("P")
R = TypeVar("R")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout (for CI).")]


@dataclass
class _State:
    debug: bool = os.environ.get("MLSHIP_DEBUG", "") not in {"", "0"}


STATE = _State()


def one_line(text: str) -> str:
    """A message as one line: every run of whitespace (newlines included) becomes one space."""
    return " ".join(text.split())


def render_error(error: MlshipError, as_json: bool) -> None:
    """Print the error (one line) and its hint on stderr; with --json, also the error as JSON on stdout."""
    message = one_line(error.message)
    if as_json:
        emit_json(
            {
                "ok": False,
                "error": message,
                "hint": error.hint,
                "exit_code": int(error.exit_code),
                "kind": type(error).__name__,
            }
        )
    # Messages and hints quote user input and tool output ("[/]", "[notice]", "[[registry]]"): never markup.
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    if error.hint:
        console.print(f"[dim]hint:[/] {escape(error.hint)}", soft_wrap=True)


def boundary(func: Callable[P, R]) -> Callable[P, R]:
    """Turn an MlshipError into one message, a hint and its exit code; --debug shows the traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        as_json = bool(kwargs.get("as_json", False))
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except MlshipError as error:
            if STATE.debug:
                raise
            render_error(error, as_json)
            raise typer.Exit(int(error.exit_code)) from None
        except KeyboardInterrupt as interrupt:  # Ctrl-C: what was stopped, if the command said
            if STATE.debug:
                raise
            detail = one_line(str(interrupt)) or "stopped before finishing; nothing after this point ran"
            if as_json:
                emit_json(
                    {
                        "ok": False,
                        "error": f"interrupted: {detail}",
                        "hint": None,
                        "exit_code": int(ExitCode.INTERRUPTED),
                        "kind": "Interrupted",
                    }
                )
            console.print(f"[bold red]interrupted:[/] {escape(detail)}", soft_wrap=True)
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except Exception as error:
            if STATE.debug:
                raise
            from mlship.adapters.engine import disk_full

            full = disk_full(error)
            if full is not None:  # a full disk is named as such, wherever it struck (exit 7)
                render_error(full, as_json)
                raise typer.Exit(int(full.exit_code)) from None
            render_error(
                MlshipError(
                    f"unexpected error: {type(error).__name__}: {error}",
                    hint="run again with 'mlship --debug …' for the traceback, and report it",
                ),
                as_json,
            )
            raise typer.Exit(int(ExitCode.ERROR)) from None

    return wrapper


def finish(result: Any, as_json: bool, render: Callable[[Any], None], exit_code: int = 0) -> None:
    """Render a core function's result (JSON on stdout, or rich on stderr) and exit with its code."""
    if as_json:
        payload = result.model_dump(mode="json") if hasattr(result, "model_dump") else result
        emit_json(payload)
    else:
        render(result)
    if exit_code:
        raise typer.Exit(exit_code)
