"""`mlship serve`: the model's REST service from the project folder, without building an image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlship.cli._common import boundary


@boundary
def serve(
    project: Annotated[Path, typer.Argument(help="Project folder (holds mlship.yaml).")] = Path("."),
    port: Annotated[int | None, typer.Option("--port", "-p", help="Port (default serving.port).")] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; 0.0.0.0 exposes it to the network.")
    ] = "127.0.0.1",
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Worker processes (default serving.workers).")
    ] = None,
) -> None:
    """Serve the project's model over HTTP (POST /predict, /docs, /metrics) until Ctrl-C.

    Examples: `mlship serve`, `mlship serve ./fraud-detector --port 9000`.
    """
    from mlship.build.serve import serve_project

    serve_project(project, host=host, port=port, workers=workers)


def register(app: typer.Typer) -> None:
    app.command()(serve)
