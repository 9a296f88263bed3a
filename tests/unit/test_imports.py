"""`mlship --help` stays fast: it imports none of the heavy libraries (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "docker",
    "nbconvert",
    "nbclient",
    "cookiecutter",
    "pandas",
    "sklearn",
    "numpy",
    "httpx",
    "joblib",
    "pydantic",
    "yaml",
)


def test_help_imports_no_heavy_module() -> None:
    code = (
        "import sys, json\n"
        "sys.argv = ['mlship', '--help']\n"
        "from mlship.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == [], f"mlship --help imported {loaded}"
    assert "init" in result.stdout


# typer itself imports pydantic (typer._adapters) to describe some parameter types in a command's help.
COMMAND_HEAVY = tuple(module for module in HEAVY if module != "pydantic")


def test_every_command_help_is_light() -> None:
    from mlship.cli import COMMANDS

    for command in COMMANDS:
        code = (
            "import sys, json\n"
            f"sys.argv = ['mlship', {command!r}, '--help']\n"
            "from mlship.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"print(json.dumps([m for m in {COMMAND_HEAVY!r} if m in sys.modules]))\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert json.loads(result.stdout.strip().splitlines()[-1]) == [], command


def test_every_public_error_subclasses_the_root() -> None:
    import inspect

    from mlship import errors

    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, Exception)]
    assert len(classes) >= 10
    assert all(issubclass(c, errors.MlshipError) for c in classes)
