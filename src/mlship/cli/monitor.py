"""`mlship monitor`: the shipped Prometheus rules, live accuracy per version, and the drift report."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from mlship.cli._common import JsonFlag, boundary, finish
from mlship.console import console

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


@boundary
def accuracy(
    log: Annotated[Path, typer.Option("--log", help="The prediction log (JSON lines; other lines skipped).")],
    labels: Annotated[Path, typer.Option("--labels", help="CSV: request_id, [row], the label.")],
    label_column: Annotated[
        str | None, typer.Option(help="The label column (default: the only one).")
    ] = None,
    live: Annotated[str | None, typer.Option(help="The live version (default: most requests).")] = None,
    canary: Annotated[str | None, typer.Option(help="The canary version (default: the next).")] = None,
    max_drop: Annotated[float, typer.Option(help="How much worse the canary may be.")] = 0.01,
    textfile: Annotated[
        Path | None,
        typer.Option(help="Also write mlship_live_metric for node_exporter's textfile collector."),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 5 when the canary is worse than live.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Each version's metrics on late labels, with 95 % intervals, and whether the canary is worse."""
    from mlship.errors import ExitCode
    from mlship.ops.monitor.accuracy import live_accuracy

    result = live_accuracy(
        log, labels, label_column=label_column, live=live, canary=canary, max_drop=max_drop, textfile=textfile
    )

    def render(found: Any) -> None:
        from rich.table import Table

        table = Table(title=f"live accuracy ({found.task})")
        for column in ("version", "role", "requests", "labelled", "metrics (95 % interval)"):
            table.add_column(column)
        for version in found.versions:
            shown = ", ".join(
                f"{name} {e.value:.3f} [{e.low:.3f}, {e.high:.3f}]"
                if e.low is not None
                else f"{name} {e.value}"
                for name, e in version.metrics.items()
            )
            table.add_row(
                version.version, version.role, str(version.requests), str(version.labelled_rows), shown
            )
        console.print(table)
        worse = [c.metric for c in found.comparisons if c.worse]
        if worse:
            console.print(
                f"[bold red]canary {found.canary} is worse than live {found.live}:[/] {', '.join(worse)}"
            )
        elif found.comparisons:
            console.print(f"[green]✓[/] canary {found.canary} is not worse than live {found.live}")
        if found.unmatched_labels:
            console.print(f"[yellow]{found.unmatched_labels} labels match no logged request[/]")

    code = int(ExitCode.BELOW_BASELINE) if check and result.canary_worse else 0
    finish(result, as_json, render, exit_code=code)


@boundary
def report(
    schema: Annotated[Path, typer.Option("--schema", help="The project's schema.json (training reference).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path("report.html"),
    log: Annotated[
        Path | None, typer.Option("--log", help="Prediction log (inputs need log_inputs).")
    ] = None,
    labels: Annotated[Path | None, typer.Option("--labels", help="Late labels: live accuracy.")] = None,
    prometheus: Annotated[
        str | None, typer.Option(help="Prometheus URL for the live counts (mlship_feature_rows_total).")
    ] = None,
    job: Annotated[str | None, typer.Option(help="Prometheus job of the service.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write one self-contained HTML page: training vs live per feature, PSI, predictions, accuracy."""
    from mlship.ops.monitor.report import write_report

    result = write_report(schema, out, log=log, labels=labels, prometheus=prometheus, job=job)

    def render(found: Any) -> None:
        drifted = [f.feature for f in found.features if f.psi is not None and f.psi > 0.2]
        console.print(f"[green]✓[/] wrote {found.path} ({len(found.features)} features, {found.source})")
        if drifted:
            console.print(f"[yellow]PSI above 0.2:[/] {', '.join(drifted)}")

    finish(result, as_json, render)


def register(app: typer.Typer) -> None:
    monitor_app.command()(rules)
    monitor_app.command()(accuracy)
    monitor_app.command()(report)
    app.add_typer(monitor_app)
