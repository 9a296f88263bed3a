"""`mlship manifests`, `canary`, `promote`, `abort`: the Kubernetes tree and the 95/5 canary."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from mlship.cli._common import JsonFlag, boundary, finish
from mlship.console import console

ProjectOpt = Annotated[Path, typer.Option("--project", "-p", help="Project folder (for name and registry).")]
RegistryOpt = Annotated[str | None, typer.Option(help="Registry host[:port]; default image.registry.")]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Tree folder; default kubernetes.output (deploy/k8s).")
]
ApplyFlag = Annotated[
    bool,
    typer.Option("--apply", help="Then run `kubectl apply -k` on the gateway-api overlay (needs a context)."),
]


def _target(project: Path, registry: str | None, output: Path | None) -> Any:
    from mlship.ops.k8s.rollout import target

    return target(project, registry, output)


def render_rollout(result: Any) -> None:
    split = f"live {result.live or '(nothing)'} {100 - result.weight} %"
    if result.canary:
        split += f", canary {result.canary} {result.weight} %"
    console.print(f"[green]✓[/] {result.repository}: {split}")
    if not result.written and not result.removed:
        console.print(f"  {result.directory}: unchanged")
    for path in result.written:
        console.print(f"  wrote   {result.directory}/{path}")
    for path in result.removed:
        console.print(f"  removed {result.directory}/{path}")
    if result.apply_note:
        console.print(f"  {result.apply_note}")


@boundary
def manifests(
    version: Annotated[
        str | None, typer.Argument(help="Render this release alone (default: live + canary).")
    ] = None,
    project: ProjectOpt = Path("."),
    registry: RegistryOpt = None,
    output: OutputOpt = None,
    apply: ApplyFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Write the kustomize tree (base, gateway-api, kserve, monitoring) for the released versions."""
    from mlship.ops.k8s.rollout import manifests as render

    finish(render(_target(project, registry, output), version, apply), as_json, render_rollout)


@boundary
def canary(
    version: Annotated[
        str | None, typer.Argument(help="Release to start (default: move the current canary).")
    ] = None,
    weight: Annotated[int, typer.Option("--weight", "-w", help="The canary's share of requests, 0–100.")] = 5,
    project: ProjectOpt = Path("."),
    registry: RegistryOpt = None,
    output: OutputOpt = None,
    apply: ApplyFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Give a release WEIGHT % of the requests beside the live one (or move the running canary)."""
    from mlship.ops.k8s.rollout import canary as start

    finish(start(_target(project, registry, output), version, weight, apply), as_json, render_rollout)


def _step(name: str, summary: str) -> Callable[..., None]:
    """`promote` and `abort`: no argument but where the project, registry and tree are."""

    def command(
        project: ProjectOpt = Path("."),
        registry: RegistryOpt = None,
        output: OutputOpt = None,
        apply: ApplyFlag = False,
        as_json: JsonFlag = False,
    ) -> None:
        from mlship.ops.k8s import rollout

        finish(getattr(rollout, name)(_target(project, registry, output), apply), as_json, render_rollout)

    command.__name__, command.__doc__ = name, summary
    return boundary(command)


promote = _step("promote", "Make the canary live (100 %); the previous live version leaves the tree.")
abort = _step("abort", "Take the canary's traffic away (weight 0, its pods stay); live is untouched.")


def register(app: typer.Typer) -> None:
    for command in (manifests, canary, promote, abort):
        app.command()(command)
