"""The Prometheus rules shipped with every project: recording rules and alerts over the service's metrics.

Recording rules (names follow Prometheus's ``level:metric:operations`` convention; ``W`` is the window):

- ``job_feature_bin:mlship_feature_live_share:ratio_rateW`` and ``job_feature:mlship_feature_psi:W``: the
  population stability index per feature, ``Σ (live − ref) · ln(live / ref)`` over its bins, shares
  clamped at ``PSI_FLOOR`` so an empty bin counts instead of dividing by zero;
- ``job:mlship_request_errors:ratio_rateW``: 5xx answers of /predict over all of them;
- ``job:mlship_request_duration_seconds:p95_W``: the 95th percentile latency of /predict;
- ``job:mlship_prediction_shift:W_vs_1d``: how far the mix of predictions (classes, or regression buckets)
  moved from the last day's (total variation distance, 0 … 1);
- ``job:mlship_fallback:ratio_rateW``: answers from the spare model over /predict requests.

Alerts: feature drift, error ratio, latency, fallback rate, and a canary worse than the live version on the
live metrics ``mlship monitor accuracy --textfile`` writes (``mlship_live_metric{version,metric}``, with the
roles in ``mlship_live_version_info{version,role}``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from mlship.project.metric_names import LOWER_IS_BETTER

PSI_FLOOR = 1e-4
PREDICT = 'route="/predict"'
Format = Literal["prometheus", "kubernetes"]


class RuleSettings(BaseModel):
    """The thresholds and durations of the shipped rules (defaults suit a service with steady traffic)."""

    window: str = "5m"
    psi_threshold: float = Field(0.2, gt=0)
    min_rows: int = Field(100, ge=0, description="rows a feature needs in the window before drift alerts")
    error_ratio: float = Field(0.05, gt=0, le=1)
    latency_p95_s: float = Field(0.5, gt=0)
    fallback_ratio: float = Field(0.05, gt=0, le=1)
    canary_max_drop: float = Field(0.01, ge=0)
    min_labelled_rows: int = Field(200, ge=0)
    durations: dict[str, str] = Field(
        default_factory=lambda: {
            "MlshipFeatureDrift": "15m",
            "MlshipHighErrorRatio": "5m",
            "MlshipSlowPredictions": "10m",
            "MlshipHighFallbackRate": "5m",
            "MlshipCanaryWorseThanLive": "15m",
        }
    )

    def with_duration(self, duration: str) -> RuleSettings:
        """A copy where every alert waits ``duration`` (``0s`` in tests: fire at the first evaluation)."""
        return self.model_copy(update={"durations": dict.fromkeys(self.durations, duration)})


class RecordingRule(BaseModel):
    record: str
    expr: str


class AlertRule(BaseModel):
    alert: str
    expr: str
    for_: str = Field(serialization_alias="for")
    labels: dict[str, str]
    annotations: dict[str, str]


class RuleGroup(BaseModel):
    name: str
    rules: list[RecordingRule | AlertRule]


def recording_rules(settings: RuleSettings) -> list[RecordingRule]:
    """The recording rules, in evaluation order (each uses only those above it)."""
    w = settings.window
    live = f"job_feature_bin:mlship_feature_live_share:ratio_rate{w}"
    ref = "max by (job, feature, bin) (mlship_feature_reference_share)"
    floor = f"{PSI_FLOOR:g}"
    shares = f"job_class:mlship_prediction_share:ratio_rate{w}"
    return [
        RecordingRule(
            record=f"job_feature_bin:mlship_feature_rows:rate{w}",
            expr=f"sum by (job, feature, bin) (rate(mlship_feature_rows_total[{w}]))",
        ),
        RecordingRule(
            record=live,
            expr=f"job_feature_bin:mlship_feature_rows:rate{w} / on (job, feature) group_left () "
            f"sum by (job, feature) (job_feature_bin:mlship_feature_rows:rate{w})",
        ),
        RecordingRule(
            record=f"job_feature:mlship_feature_rows:increase{w}",
            expr=f"sum by (job, feature) (increase(mlship_feature_rows_total[{w}]))",
        ),
        RecordingRule(
            record=f"job_feature:mlship_feature_psi:{w}",
            expr=(
                f"sum by (job, feature) ((clamp_min({live}, {floor}) - clamp_min({ref}, {floor})) "
                f"* ln(clamp_min({live}, {floor}) / clamp_min({ref}, {floor})))"
            ),
        ),
        RecordingRule(
            record=f"job:mlship_request_errors:ratio_rate{w}",
            expr=f'sum by (job) (rate(mlship_requests_total{{{PREDICT},status=~"5.."}}[{w}])) / '
            f"sum by (job) (rate(mlship_requests_total{{{PREDICT}}}[{w}]))",
        ),
        RecordingRule(
            record=f"job:mlship_request_duration_seconds:p95_{w}",
            expr="histogram_quantile(0.95, sum by (job, le) "
            f"(rate(mlship_request_duration_seconds_bucket{{{PREDICT}}}[{w}])))",
        ),
        RecordingRule(
            record=shares,
            expr=f"sum by (job, class, bucket) (rate(mlship_predictions_total[{w}])) / on (job) "
            f"group_left () sum by (job) (rate(mlship_predictions_total[{w}]))",
        ),
        RecordingRule(
            record="job_class:mlship_prediction_share:ratio_rate1d",
            expr="sum by (job, class, bucket) (rate(mlship_predictions_total[1d])) / on (job) "
            "group_left () sum by (job) (rate(mlship_predictions_total[1d]))",
        ),
        RecordingRule(
            record=f"job:mlship_prediction_shift:{w}_vs_1d",
            expr=f"sum by (job) (abs({shares} - job_class:mlship_prediction_share:ratio_rate1d)) / 2",
        ),
        RecordingRule(
            record=f"job:mlship_fallback:ratio_rate{w}",
            expr=f"sum by (job) (rate(mlship_fallback_total[{w}])) / "
            f"sum by (job) (rate(mlship_requests_total{{{PREDICT}}}[{w}]))",
        ),
        RecordingRule(
            record="version_metric:mlship_live_metric:canary",
            expr="mlship_live_metric * ignoring (metric, role) group_left () "
            '(mlship_live_version_info{role="canary"} == 1)',
        ),
        RecordingRule(
            record="metric:mlship_live_metric:live",
            expr="max without (version) (mlship_live_metric * ignoring (metric, role) group_left () "
            '(mlship_live_version_info{role="live"} == 1))',
        ),
    ]


def alert_rules(settings: RuleSettings) -> list[AlertRule]:
    """The alerts; each names what to look at in its annotations."""
    w, s = settings.window, settings
    lower = "|".join(sorted(LOWER_IS_BETTER))
    canary, live = "version_metric:mlship_live_metric:canary", "metric:mlship_live_metric:live"
    drop = f"{s.canary_max_drop:g}"
    enough = f"ignoring (metric) (mlship_live_labelled_rows >= {s.min_labelled_rows})"

    def alert(name: str, expr: str, severity: str, summary: str, description: str) -> AlertRule:
        return AlertRule(
            alert=name,
            expr=expr,
            for_=s.durations.get(name, "5m"),
            labels={"severity": severity},
            annotations={"summary": summary, "description": description},
        )

    return [
        alert(
            "MlshipFeatureDrift",
            f"job_feature:mlship_feature_psi:{w} > {s.psi_threshold:g} and on (job, feature) "
            f"job_feature:mlship_feature_rows:increase{w} >= {s.min_rows}",
            "warning",
            "Input drift on feature {{ $labels.feature }} of {{ $labels.job }}",
            f"The live distribution of this feature over {w} is away from the training reference in "
            f"schema.json (PSI above {s.psi_threshold:g}). Compare them with `mlship monitor report`.",
        ),
        alert(
            "MlshipHighErrorRatio",
            f"job:mlship_request_errors:ratio_rate{w} > {s.error_ratio:g}",
            "critical",
            "{{ $labels.job }} answers /predict with 5xx errors",
            f"More than {s.error_ratio:.0%} of /predict requests over {w} failed; see the service log "
            "(the request ids are in the answers).",
        ),
        alert(
            "MlshipSlowPredictions",
            f"job:mlship_request_duration_seconds:p95_{w} > {s.latency_p95_s:g}",
            "warning",
            "{{ $labels.job }} /predict is slow",
            f"The 95th percentile latency of /predict over {w} is above {s.latency_p95_s:g} s.",
        ),
        alert(
            "MlshipHighFallbackRate",
            f"job:mlship_fallback:ratio_rate{w} > {s.fallback_ratio:g}",
            "warning",
            "{{ $labels.job }} answers from the fallback model",
            f"More than {s.fallback_ratio:.0%} of /predict requests over {w} were answered by the spare "
            "model (mlship_fallback_total by reason: error, timeout, circuit-open).",
        ),
        alert(
            "MlshipCanaryWorseThanLive",
            f'(({canary}{{metric!~"{lower}"}} < ignoring (version) group_left () ({live} - {drop})) or '
            f'({canary}{{metric=~"{lower}"}} > ignoring (version) group_left () ({live} + {drop}))) '
            f"and {enough}",
            "critical",
            "Canary {{ $labels.version }} is worse than live on {{ $labels.metric }}",
            f"On late labels the canary's metric is worse than the live version's by more than {drop} "
            f"(at least {s.min_labelled_rows} labelled rows). Details: `mlship monitor accuracy`; "
            "roll back with `mlship rollback`.",
        ),
    ]


def rule_groups(settings: RuleSettings | None = None) -> list[RuleGroup]:
    settings = settings or RuleSettings()
    return [
        RuleGroup(name="mlship.recording", rules=list(recording_rules(settings))),
        RuleGroup(name="mlship.alerts", rules=list(alert_rules(settings))),
    ]


def rules_document(
    settings: RuleSettings | None = None, form: Format = "prometheus", name: str = "mlship"
) -> dict[str, Any]:
    """The rules as a Prometheus rule file, or as a Kubernetes PrometheusRule (prometheus-operator)."""
    groups = [group.model_dump(by_alias=True) for group in rule_groups(settings)]
    if form == "prometheus":
        return {"groups": groups}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": f"{name}-rules",
            "labels": {"app.kubernetes.io/name": name, "role": "alert-rules"},
        },
        "spec": {"groups": groups},
    }


def alertmanager_example(webhook_url: str = "http://127.0.0.1:9095/alerts") -> dict[str, Any]:
    """An Alertmanager config: every mlship alert to a webhook, critical ones to Slack as well."""
    return {
        "route": {
            "receiver": "webhook",
            "group_by": ["alertname", "job"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {"matchers": ['alertname=~"Mlship.*"'], "receiver": "webhook", "continue": True},
                {"matchers": ['alertname=~"Mlship.*"', 'severity="critical"'], "receiver": "slack"},
            ],
        },
        "receivers": [
            {"name": "webhook", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]},
            {
                "name": "slack",
                "slack_configs": [
                    {
                        "api_url": "https://hooks.slack.com/services/REPLACE/WITH/YOURS",
                        "channel": "#ml-alerts",
                        "send_resolved": True,
                        "title": "{{ .CommonAnnotations.summary }}",
                        "text": "{{ range .Alerts }}{{ .Annotations.description }}\n{{ end }}",
                    }
                ],
            },
        ],
    }


def render_yaml(document: dict[str, Any]) -> str:
    import yaml

    return str(yaml.safe_dump(document, sort_keys=False, width=1000, allow_unicode=True))


class RulesResult(BaseModel):
    """What `mlship monitor rules` prints: the document and its YAML text."""

    format: str
    document: dict[str, Any]
    text: str


def build_rules(
    form: Literal["prometheus", "kubernetes", "alertmanager"] = "prometheus",
    settings: RuleSettings | None = None,
    name: str = "mlship",
    webhook_url: str = "http://127.0.0.1:9095/alerts",
) -> RulesResult:
    """The shipped rules (plain file or PrometheusRule), or the example Alertmanager configuration."""
    document = (
        alertmanager_example(webhook_url) if form == "alertmanager" else rules_document(settings, form, name)
    )
    return RulesResult(format=form, document=document, text=render_yaml(document))
