"""`mlship serve`: the serving runtime, in this process, on the project's working files (no image).

The files the image would carry (solution.py and the modules it imports, the artefacts, schema.json) are
staged into `<project>/.mlship/serve/` with a service.json written from mlship.yaml, so the service sees
exactly the layout it has in the image; artefact hashes are not recorded (a working folder changes).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mlship.build.context import stage_service_files
from mlship.build.requirements import STATE_DIR
from mlship.console import console
from mlship.errors import MlshipError, UsageError
from mlship.gate.solution_check import check_solution
from mlship.project.config import load_project

SERVE_DIR = "serve"


def stage_for_serving(project_dir: Path | str = ".") -> Path:
    """Check solution.py and stage what the runtime serves into `<project>/.mlship/serve/`; return it."""
    project = load_project(project_dir)
    local_modules = check_solution(project)
    folder = project.root / STATE_DIR / SERVE_DIR
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    stage_service_files(project, folder, local_modules=local_modules, record_hashes=False)
    return folder


def serve_project(
    project_dir: Path | str = ".",
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    workers: int | None = None,
) -> None:
    """Serve the project until Ctrl-C / SIGTERM. Listens on 127.0.0.1 unless `host` says otherwise.

    Raises UsageError when the port is taken, MlshipError when the service cannot start."""
    folder = stage_for_serving(project_dir)
    from mlship.serving.runner import serve

    console.print(f"[bold]Serving[/] {folder.parent.parent.name} from {folder} on {host} (Ctrl-C stops it)")
    try:
        code = serve(folder, host=host, port=port, workers=workers)
    except OSError as error:
        raise UsageError(
            f"cannot listen on {host}:{port if port is not None else 'serving.port'}: "
            f"{error.strerror or error}",
            hint="pick another port with --port, or stop what is using it",
        ) from error
    if code != 0:
        raise MlshipError(
            f"the service stopped with exit code {code}: the model could not be loaded "
            "(see the log line above)",
            hint="fix the cause, then check it with 'mlship test'",
        )
