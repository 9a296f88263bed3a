"""`mlship serve`: the serving runtime, in this process, on the project's working files (no image).

The files the image would carry (solution.py and the modules it imports, the artefacts, schema.json) are
staged into `<project>/.mlship/serve/` with a service.json written from mlship.yaml, so the service sees
exactly the layout it has in the image; artefact hashes are not recorded (a working folder changes).

The local modules are found by reading the code (project/imports.py), not by `mlship build`'s child
import, so the service starts at once; the service's own import of solution.py is the check. When the
service cannot start, the child check runs then and explains it (the file, line and error, exit 7), or
finds a local module that only an import reveals and the service starts again with it.

Packages that mlship itself brings but the project does not require (pyarrow, for mlship's Parquet) are
hidden from the service's workers, as the image will not have them: pandas changes its string dtype and
memory use when pyarrow is importable.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mlship.build.context import stage_service_files
from mlship.build.requirements import STATE_DIR
from mlship.console import console
from mlship.errors import MlshipError, UsageError
from mlship.gate.solution_check import check_solution
from mlship.project.config import Project, load_project
from mlship.project.imports import local_modules

SERVE_DIR = "serve"
HIDDEN_UNLESS_REQUIRED = ("pyarrow",)
HIDE_ENV = "MLSHIP_SERVE_HIDE_MODULES"  # read by mlship.serving.hidden in each worker


def stage_for_serving(project_dir: Path | str = ".", modules: list[str] | None = None) -> Path:
    """Stage what the runtime serves into `<project>/.mlship/serve/`; return it. `modules`: the local
    modules to ship (default: those solution.py imports, read from the code)."""
    project = load_project(project_dir)
    if modules is None:
        modules = _read_local_modules(project)
    folder = project.root / STATE_DIR / SERVE_DIR
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    stage_service_files(project, folder, local_modules=modules, record_hashes=False)
    return folder


def _read_local_modules(project: Project) -> list[str]:
    try:
        return local_modules(project.solution_path, project.root)
    except (SyntaxError, UnicodeDecodeError, OSError):
        check_solution(project)  # explains it: a missing solution, or the file and line that do not parse
        raise


def hidden_modules(project: Project) -> list[str]:
    """mlship's own packages the project's requirements.in does not name (the image will not have them)."""
    from packaging.utils import canonicalize_name

    from mlship.project.requirements import read_requirements_in

    required = {
        canonicalize_name(requirement.name)
        for _, requirement in read_requirements_in(project.root / "requirements.in")
        if requirement is not None
    }
    return [name for name in HIDDEN_UNLESS_REQUIRED if canonicalize_name(name) not in required]


def serve_project(
    project_dir: Path | str = ".",
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    workers: int | None = None,
) -> None:
    """Serve the project until Ctrl-C / SIGTERM. Listens on 127.0.0.1 unless `host` says otherwise.

    Raises UsageError when the port is taken, BuildFailed when solution.py cannot be imported, MlshipError
    when the service cannot start for another reason."""
    project = load_project(project_dir)
    modules = _read_local_modules(project)
    folder = stage_for_serving(project.root, modules)
    os.environ[HIDE_ENV] = ",".join(hidden_modules(project))
    code = _serve(folder, host, port, workers)
    if code != 0:
        console.print("[dim]the service did not start: importing solution.py in a child to see why[/]")
        found = check_solution(project)  # raises BuildFailed naming the file and line
        if set(found) - set(modules):
            folder = stage_for_serving(project.root, sorted(set(modules) | set(found)))
            code = _serve(folder, host, port, workers)
    if code != 0:
        raise MlshipError(
            f"the service stopped with exit code {code}: the model could not be loaded "
            "(see the log line above)",
            hint="fix the cause, then check it with 'mlship test'",
        )


def _serve(folder: Path, host: str, port: int | None, workers: int | None) -> int:
    from mlship.serving.runner import serve

    console.print(f"[bold]Serving[/] {folder.parent.parent.name} from {folder} on {host} (Ctrl-C stops it)")
    try:
        return serve(folder, host=host, port=port, workers=workers)
    except OSError as error:
        raise UsageError(
            f"cannot listen on {host}:{port if port is not None else 'serving.port'}: "
            f"{error.strerror or error}",
            hint="pick another port with --port, or stop what is using it",
        ) from error
