"""`mlship monitor`: the shipped Prometheus rules, live accuracy per version, and the drift report."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer

from mlship.cli._common import JsonFlag, boundary, finish

monitor_app = typer.Typer(
    name="monitor",
    help="Watch the live model: alert rules, live accuracy per version, drift report.",
    no_args_is_help=True,
)


class RulesFormat(str, Enum):
    prometheus = "prometheus"
    kubernetes = "kubernetes"
    alertmanager = "alertmanager"


@boundary
def rules(
    form: Annotated[
        RulesFormat,
        typer.Option(
            "--format",
            help="prometheus: a rule file; kubernetes: a PrometheusRule; alertmanager: an example config.",
        ),
    ] = RulesFormat.prometheus,
    name: Annotated[str, typer.Option(help="Name of the PrometheusRule.")] = "mlship",
    window: Annotated[str, typer.Option(help="Rate window of the recording rules.")] = "5m",
    psi_threshold: Annotated[float, typer.Option(help="PSI above which a feature has drifted.")] = 0.2,
    wait: Annotated[
        str | None, typer.Option("--for", help="How long every alert must hold before it fires.")
    ] = None,
    webhook_url: Annotated[
        str, typer.Option(help="Webhook receiver of the Alertmanager example.")
    ] = "http://127.0.0.1:9095/alerts",
    as_json: JsonFlag = False,
) -> None:
    """Print the recording rules and alerts (drift, errors, latency, fallback, canary) as YAML on stdout."""
    from mlship.ops.monitor.rules import RuleSettings, build_rules

    settings = RuleSettings(window=window, psi_threshold=psi_threshold)
    if wait is not None:
        settings = settings.with_duration(wait)
    result = build_rules(form.value, settings, name, webhook_url)

    def render(found: Any) -> None:
        typer.echo(found.text, nl=False)

    finish(result, as_json, render)


def register(app: typer.Typer) -> None:
    monitor_app.command()(rules)
    app.add_typer(monitor_app)
