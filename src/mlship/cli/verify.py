"""`mlship verify IMAGE`: is this image what mlship built? Its files, SBOM and layers against its labels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from mlship.cli._common import JsonFlag, boundary, finish, one_line
from mlship.console import console

if TYPE_CHECKING:
    from mlship.release.verify_image import VerifyReport


@boundary
def verify(
    image: Annotated[
        str, typer.Argument(help="The image: local (name:tag) or in a registry (host/name:tag).")
    ],
    pull: Annotated[
        bool, typer.Option("--pull/--no-pull", help="Pull the image when it is not local.")
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Check, without running anything in the image, that its model, schema.json, frozen requirements,
    SBOM and every other file mlship put under /app match the sha256 recorded in its labels, that the SBOM
    lists exactly the locked packages, and that no layer was added after the build. Names the first file
    that differs.

    Exit codes: 0 the image is what its labels say was built; 7 a file, package or layer differs (named);
    2 the image is not in the engine and its reference names no registry; 8 pulling it failed; 6 no
    container engine. Example: `mlship verify 127.0.0.1:5000/fraud-detector:v3 --json`.
    """
    from mlship.release.verify_image import verify_image

    report = verify_image(image, pull=pull)
    finish(report, as_json, _render, report.exit_code)


def _render(report: VerifyReport) -> None:
    from rich.markup import escape

    console.print(
        f"[bold]{escape(report.image)}[/]: {report.files_checked} files read in {report.seconds:.1f} s"
    )
    for check in report.checks:
        mark = "[green]✓[/]" if check.ok else "[bold red]✗[/]"
        against = f" [dim]vs {escape(check.label or 'the lock')}[/]"
        detail = f" [dim]{escape(check.detail)}[/]" if check.ok and check.detail else ""
        failure = f"\n    {escape(check.detail)}" if not check.ok else ""
        console.print(
            f"{mark} {check.name:<12} {escape(check.path)}{against}{detail}{failure}", soft_wrap=True
        )
    if report.ok:
        console.print(f"[green]✓ verified[/]: {escape(report.image)} holds what its labels say was built")
        return
    console.print(f"[bold red]error:[/] {escape(one_line(report.error or ''))}", soft_wrap=True)
    if report.hint:
        console.print(f"[dim]hint:[/] {escape(report.hint)}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(verify)
