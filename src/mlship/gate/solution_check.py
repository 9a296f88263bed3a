"""Fail before Docker: import solution.py in a child interpreter and check it defines a usable `Model`.

`check_solution(project)` runs ``python -m mlship.gate.solution_check RESULT SOLUTION ROOT`` in the project
folder. The child imports the solution (nothing is trained: importing it must not train), checks
`Model.load` and `Model.predict`, and writes a JSON result: the project's own modules the import pulled in
(they are copied into the image next to solution.py), or the error with the file and line it points at. A
syntax or import error becomes one BuildFailed (exit 7) naming the file and line, before any image is built.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from mlship.errors import BuildFailed
from mlship.project.config import Project
from mlship.project.imports import is_local, package_files

TIMEOUT_S = 120.0


def check_solution(project: Project, *, timeout_s: float = TIMEOUT_S) -> list[str]:
    """Import the project's solution in a subprocess; return the local modules it imports (relative
    POSIX paths, solution itself excluded). Raises BuildFailed naming the file and line on failure."""
    solution = project.solution_path
    shown = _relative(solution, project.root)
    if not solution.is_file():
        raise BuildFailed(
            f"{shown}: file not found", hint="set model.solution in mlship.yaml to your model code"
        )
    with tempfile.TemporaryDirectory(prefix="mlship-check-") as scratch:
        result_file = Path(scratch) / "result.json"
        try:
            completed = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "mlship.gate.solution_check",
                    str(result_file),
                    str(solution),
                    str(project.root),
                ],
                cwd=project.root,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise BuildFailed(
                f"{shown}: importing it took longer than {timeout_s:g} s",
                hint="importing solution.py must not train or download anything; move that into train()",
            ) from error
        try:
            result = json.loads(result_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            tail = (completed.stderr or completed.stdout).strip().splitlines()[-1:] or ["no output"]
            raise BuildFailed(
                f"{shown}: importing it ended the interpreter (exit code {completed.returncode}): "
                f"{tail[0][:200]}",
                hint=f"{shown} must not call sys.exit or crash at import",
            ) from None
    if not result["ok"]:
        where = result.get("file") or shown
        line = f" line {result['line']}" if result.get("line") else ""
        code = f" (`{result['code']}`)" if result.get("code") else ""
        message = f": {result['message']}" if result.get("message") else ""
        raise BuildFailed(
            f"{where}{line}: {result['type']}{message}{code}",
            hint=f"fix {where} (mlship imports it before building; nothing was sent to the container engine)",
        )
    return [str(module) for module in result["local_modules"]]


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


# --- the child side -----------------------------------------------------------------------------------


def _local_modules(root: Path, solution: Path) -> list[str]:
    found: set[str] = set()
    for module in list(sys.modules.values()):
        name = getattr(module, "__file__", None)
        if not name:
            continue
        file = Path(name).resolve()
        if file == solution or not is_local(file, root) or file.suffix != ".py":
            continue
        if file.name == "__init__.py":
            found.update(
                candidate.relative_to(root).as_posix() for candidate in package_files(file.parent, root)
            )
        else:
            found.add(file.relative_to(root).as_posix())
    return sorted(found)


def _error(error: BaseException, root: Path) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ok": False,
        "type": type(error).__name__,
        "file": None,
        "line": None,
        "code": None,
    }
    text = str(error).strip()
    result["message"] = text.splitlines()[0][:300] if text else ""
    if isinstance(error, SyntaxError) and error.filename and is_local(Path(error.filename).resolve(), root):
        result.update(
            file=Path(error.filename).resolve().relative_to(root).as_posix(),
            line=error.lineno,
            code=(error.text or "").strip()[:120] or None,
            message=error.msg,
        )
        return result
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.filename and is_local(Path(frame.filename).resolve(), root)
    ]
    if frames:
        frame = frames[-1]
        result.update(
            file=Path(frame.filename).resolve().relative_to(root).as_posix(),
            line=frame.lineno,
            code=(frame.line or "").strip()[:120] or None,
        )
    return result


def _check(solution: Path, root: Path) -> dict[str, Any]:
    sys.path.insert(0, str(solution.parent))
    try:
        spec = importlib.util.spec_from_file_location(solution.stem, solution)
        if spec is None or spec.loader is None:
            return {"ok": False, "type": "ImportError", "message": f"cannot import {solution.name}"}
        module = importlib.util.module_from_spec(spec)
        sys.modules[solution.stem] = module
        spec.loader.exec_module(module)
    except BaseException as error:  # anything the user's module raises, SystemExit included
        return _error(error, root)
    model = getattr(module, "Model", None)
    relative = solution.relative_to(root).as_posix()
    if not isinstance(model, type):
        return {"ok": False, "type": "missing Model", "file": relative, "message": "defines no class Model"}
    missing = [name for name in ("load", "predict") if not callable(getattr(model, name, None))]
    if missing:
        return {
            "ok": False,
            "type": "incomplete Model",
            "file": relative,
            "message": f"class Model has no {' or '.join(missing)} method",
        }
    return {"ok": True, "local_modules": _local_modules(root, solution)}


def main(argv: list[str]) -> int:
    """Child entry point: write the check's JSON result to argv[1]."""
    result_file, solution, root = Path(argv[1]), Path(argv[2]).resolve(), Path(argv[3]).resolve()
    os.dup2(2, 1)  # the user's prints go to stderr
    result = _check(solution, root)
    result_file.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stderr.flush()
    os._exit(code)  # do not wait for threads the user's module may have started
