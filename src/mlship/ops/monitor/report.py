"""`mlship monitor report`: one self-contained HTML page (inline SVG and CSS, no script, no CDN).

For each feature the training distribution beside the live one over the same fixed bins the service counts
(``serving/drift.py``), with its PSI; the PSI of every feature; predictions over time per version; and live
accuracy per version when labels are given. The live counts come from the prediction log's ``inputs``
(``serving.log_inputs``) or from a Prometheus server (``mlship_feature_rows_total``).
"""

from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mlship.errors import DataError, UsageError

PSI_FLOOR = 1e-4
PSI_WARN = 0.2
COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")


class FeatureDrift(BaseModel):
    feature: str
    bins: list[str]
    reference: list[float]
    live: list[float]
    rows: int
    psi: float | None


class ReportResult(BaseModel):
    path: str
    features: list[FeatureDrift]
    versions: list[str]
    source: str


def psi(reference: list[float], live: list[float]) -> float | None:
    """Population stability index, shares floored as the shipped recording rule floors them."""
    if not live or sum(live) <= 0:
        return None
    total = 0.0
    for expected, actual in zip(reference, live, strict=True):
        e, a = max(expected, PSI_FLOOR), max(actual, PSI_FLOOR)
        total += (a - e) * math.log(a / e)
    return round(total, 6)


def _live_from_log(schema: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, list[int]]:
    from mlship.serving.drift import feature_bins

    columns: dict[str, list[Any]] = defaultdict(list)
    for record in records:
        inputs = record.get("inputs")
        for row in [inputs] if isinstance(inputs, dict) else inputs if isinstance(inputs, list) else []:
            if isinstance(row, dict):
                for name, value in row.items():
                    columns[name].append(value)
    return {bins.name: bins.count(columns.get(bins.name, [])).tolist() for bins in feature_bins(schema)}


def _live_from_prometheus(url: str, job: str | None) -> dict[str, dict[str, float]]:
    import httpx

    selector = f'{{job="{job}"}}' if job else ""
    query = f"sum by (feature, bin) (mlship_feature_rows_total{selector})"
    try:
        answer = httpx.get(f"{url.rstrip('/')}/api/v1/query", params={"query": query}, timeout=10)
        answer.raise_for_status()
        result = answer.json()["data"]["result"]
    except (httpx.HTTPError, KeyError, ValueError) as error:
        raise UsageError(
            f"Prometheus at {url} did not answer the query: {error}", hint="check --prometheus"
        ) from None
    found: dict[str, dict[str, float]] = defaultdict(dict)
    for sample in result:
        found[sample["metric"].get("feature", "")][sample["metric"].get("bin", "")] = float(
            sample["value"][1]
        )
    return found


def drift_table(
    schema: dict[str, Any], records: list[dict[str, Any]], prometheus: str | None, job: str | None
) -> list[FeatureDrift]:
    from mlship.serving.drift import feature_bins

    if prometheus:
        by_bin = _live_from_prometheus(prometheus, job)
        counts = {
            b.name: [by_bin.get(b.name, {}).get(label, 0.0) for label in b.labels]
            for b in feature_bins(schema)
        }
    else:
        counts = {
            name: [float(c) for c in values] for name, values in _live_from_log(schema, records).items()
        }
    features = []
    for bins in feature_bins(schema):
        live = counts.get(bins.name, [0.0] * len(bins.labels))
        rows = sum(live)
        shares = [c / rows for c in live] if rows else []
        features.append(
            FeatureDrift(
                feature=bins.name,
                bins=bins.labels,
                reference=[round(s, 6) for s in bins.shares],
                live=[round(s, 6) for s in shares],
                rows=int(rows),
                psi=psi(bins.shares, shares),
            )
        )
    return features


# --- SVG ---------------------------------------------------------------------------------------------------


def _bars(feature: FeatureDrift) -> str:
    width, height, pad = 360, 180, 28
    count = max(len(feature.bins), 1)
    top = max([*feature.reference, *feature.live, 0.01])
    slot = (width - 2 * pad) / count
    parts = [
        f'<svg class="feature-chart" data-feature="{html.escape(feature.feature)}" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
        f"<title>{html.escape(feature.feature)}: training vs live share per bin</title>",
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>',
    ]
    for index, label in enumerate(feature.bins):
        x = pad + index * slot
        for offset, (values, colour) in enumerate(
            ((feature.reference, COLOURS[0]), (feature.live, COLOURS[1]))
        ):
            value = values[index] if index < len(values) else 0.0
            bar = (height - 2 * pad) * value / top
            parts.append(
                f'<rect x="{x + 2 + offset * (slot - 4) / 2:.1f}" y="{height - pad - bar:.1f}" '
                f'width="{(slot - 4) / 2:.1f}" height="{bar:.1f}" fill="{colour}">'
                f"<title>{html.escape(label)}: {value:.3f}</title></rect>"
            )
        parts.append(
            f'<text x="{x + slot / 2:.1f}" y="{height - pad + 14}" font-size="10" '
            f'text-anchor="middle">{html.escape(label[:10])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _psi_chart(features: list[FeatureDrift]) -> str:
    width, row = 520, 22
    height = row * len(features) + 30
    top = max([f.psi or 0.0 for f in features] + [PSI_WARN * 1.5])
    scale = (width - 160) / top
    parts = [f'<svg class="psi-chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}">']
    for index, feature in enumerate(features):
        y = 10 + index * row
        value = feature.psi or 0.0
        colour = COLOURS[3] if value > PSI_WARN else COLOURS[2]
        parts.append(f'<text x="0" y="{y + 14}" font-size="12">{html.escape(feature.feature[:18])}</text>')
        parts.append(
            f'<rect x="130" y="{y}" width="{value * scale:.1f}" height="{row - 6}" fill="{colour}"/>'
        )
        shown = "no rows" if feature.psi is None else f"{value:.3f}"
        parts.append(f'<text x="{135 + value * scale:.1f}" y="{y + 14}" font-size="11">{shown}</text>')
    x = 130 + PSI_WARN * scale
    parts.append(
        f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height}" stroke="#c44e52" stroke-dasharray="4"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _timeline(records: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """Predictions per minute per version, as lines."""
    per: dict[str, Counter[int]] = defaultdict(Counter)
    for record in records:
        ts, predictions = record.get("ts"), record.get("predictions")
        if isinstance(ts, (int, float)) and isinstance(predictions, list):
            per[str(record.get("model_version"))][int(ts // 60)] += len(predictions)
    versions = sorted(per)
    if not versions:
        return "<p>No prediction records.</p>", []
    minutes = sorted({m for counts in per.values() for m in counts})
    width, height, pad = 640, 200, 30
    first, span = minutes[0], max(minutes[-1] - minutes[0], 1)
    top = max(max(c.values()) for c in per.values())
    parts = [f'<svg class="timeline" viewBox="0 0 {width} {height}" width="{width}" height="{height}">']
    for index, version in enumerate(versions):
        points = " ".join(
            f"{pad + (m - first) / span * (width - 2 * pad):.1f},"
            f"{height - pad - per[version][m] / top * (height - 2 * pad):.1f}"
            for m in minutes
        )
        colour = COLOURS[index % len(COLOURS)]
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.append(
            f'<text x="{pad + 80 * index}" y="14" font-size="12" fill="{colour}">'
            f"{html.escape(version)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts), versions


def _accuracy_table(accuracy: Any) -> str:
    rows = []
    for version in accuracy.versions:
        metrics = ", ".join(
            f"{name} {e.value:.3f} [{e.low:.3f}, {e.high:.3f}]" if e.low is not None else f"{name} {e.value}"
            for name, e in version.metrics.items()
        )
        rows.append(
            f"<tr><td>{html.escape(version.version)}</td><td>{version.role}</td>"
            f"<td>{version.labelled_rows}</td><td>{html.escape(metrics)}</td></tr>"
        )
    verdict = "worse than live" if accuracy.canary_worse else "not worse than live"
    return (
        '<table class="accuracy"><tr><th>version</th><th>role</th><th>labelled rows</th>'
        f"<th>metrics (95 % interval)</th></tr>{''.join(rows)}</table>"
        f"<p>Canary {html.escape(str(accuracy.canary))}: {verdict}.</p>"
    )


POLICY = "default-src 'none'; style-src 'unsafe-inline'"  # nothing is fetched, nothing runs
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    ".grid{display:flex;flex-wrap:wrap;gap:1em}.card{border:1px solid #ddd;padding:.5em;border-radius:6px}"
    ".legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}"
    "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}"
)


def write_report(
    schema_path: Path,
    out: Path,
    *,
    log: Path | None = None,
    labels: Path | None = None,
    prometheus: str | None = None,
    job: str | None = None,
) -> ReportResult:
    """Write the report page; the live distributions from ``prometheus`` when given, else from ``log``."""
    from mlship.project.schema import load_schema

    if log is None and prometheus is None:
        raise UsageError("no live data", hint="pass --log PREDICTIONS.jsonl or --prometheus URL (or both)")
    schema = load_schema(schema_path)
    from mlship.ops.monitor.accuracy import prediction_records

    records = prediction_records(log) if log is not None else []
    features = drift_table(schema, records, prometheus, job)
    if not features:
        raise DataError(f"{schema_path}: no column has a training reference", hint="regenerate schema.json")
    timeline, versions = _timeline(records)
    accuracy = ""
    if labels is not None and log is not None:
        from mlship.ops.monitor.accuracy import live_accuracy

        accuracy = _accuracy_table(live_accuracy(log, labels))
    cards = "".join(
        f'<div class="card"><h3>{html.escape(f.feature)} — PSI {"–" if f.psi is None else f"{f.psi:.3f}"}'
        f" ({f.rows} rows)</h3>{_bars(f)}</div>"
        for f in features
    )
    legend = (
        f'<p class="legend"><span style="background:{COLOURS[0]}"></span>training (schema.json)'
        f'<span style="background:{COLOURS[1]}"></span>live</p>'
    )
    source = f"Prometheus {prometheus}" if prometheus else f"prediction log {log}"
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
        f"<title>mlship monitor report</title><style>{STYLE}</style></head><body>"
        f"<h1>Live model report</h1><p>Live data: {html.escape(source)}.</p>"
        f"<h2>Population stability index per feature</h2>{_psi_chart(features)}"
        f'<h2>Training vs live, per feature</h2>{legend}<div class="grid">{cards}</div>'
        f"<h2>Predictions per minute, per version</h2>{timeline}"
        + (f"<h2>Live accuracy per version</h2>{accuracy}" if accuracy else "")
        + "</body></html>"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return ReportResult(path=str(out), features=features, versions=versions, source=source)
