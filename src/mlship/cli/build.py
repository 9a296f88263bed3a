"""`mlship build`: the project's image, with frozen requirements, the serving runtime and the model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mlship.cli._common import JsonFlag, boundary, finish
from mlship.console import console


@boundary
def build(
    project: Annotated[Path, typer.Argument(help="Project folder (holds mlship.yaml).")] = Path("."),
    tag: Annotated[
        str | None, typer.Option("--tag", "-t", help="Image reference (default NAME:dev).")
    ] = None,
    base_image: Annotated[
        str | None, typer.Option("--base-image", help="Base image (default image.base, python:X.Y-slim).")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild every layer.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Freeze requirements, stage the build context and build the image; print its reference, ID,
    size and build time.

    Examples: `mlship build`, `mlship build ./fraud-detector --tag fraud-detector:try1`.
    """
    from mlship.build.assemble import build_project

    result = build_project(project, tag=tag, base_image=base_image, no_cache=no_cache)
    finish(result, as_json, _render)


def _size(size_bytes: int) -> str:
    return f"{size_bytes / 1_000_000:.0f} MB"


def _render(result: Any) -> None:
    cached = f", {result.cached_steps}/{result.steps} steps cached" if result.steps else ""
    reused = "reused" if result.requirements_reused else "resolved"
    console.print(f"[green]✓[/] built [bold]{result.image_ref}[/]")
    console.print(f"  id            {result.image_id}", soft_wrap=True)
    console.print(f"  digest        {result.digest or '(known once pushed: mlship deploy)'}")
    console.print(f"  size          {_size(result.size_bytes)}")
    console.print(f"  build time    {result.seconds:.1f} s{cached}")
    console.print(f"  requirements  {result.requirements_path} ({reused})")
    console.print(f"  Dockerfile    {result.dockerfile_path}")
    if result.openapi_path:
        console.print(f"  OpenAPI       {result.openapi_path}")
    console.print(f"  SBOM          {result.sbom_path}")
    console.print(f"  model sha256  {result.model_sha256}")


def register(app: typer.Typer) -> None:
    app.command()(build)
