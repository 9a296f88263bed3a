"""Issue 16's serving targets, read from one bench-peers report: each with its figures and met or not.

    python benchmarks/peers_targets.py benchmarks/results/peers-lr-4 [--json]

Every comparison is within the one run (same machine, same window): throughput as the median of the
per-round ratios, latency and the rest as the run's medians. The mlship targets checked are those the
report holds: `mlship` (mlship serve, auto workers), `mlship-w1` (one worker) and `mlship-image` (the built
image under `docker run`). RSS per worker is the difference between the two-worker and the one-worker
trees (the supervisor is in both); the image's processes run under the engine, outside the report's tree.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

MLSHIP = ("mlship", "mlship-w1", "mlship-image")
SLACK_COLD_S = 0.5
SLACK_MODEL_MS = 0.5
RSS_PER_WORKER_MB = 200.0


def _round_ratio(slices: dict[str, Any], target: str, peer: str, concurrency: str) -> float | None:
    ours = {s["round"]: s["rps"] for s in slices.get(target, {}).get(concurrency, [])}
    theirs = {s["round"]: s["rps"] for s in slices.get(peer, {}).get(concurrency, [])}
    ratios = [ours[r] / theirs[r] for r in ours if r in theirs and theirs[r]]
    return statistics.median(ratios) if ratios else None


def _median(slices: dict[str, Any], target: str, concurrency: str, key: str) -> float | None:
    values = [s[key] for s in slices.get(target, {}).get(concurrency, [])]
    return statistics.median(values) if values else None


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (target, mlship variant): the figures compared and whether the target is met."""
    results, slices = report["results"], report["slices"]
    rows: list[dict[str, Any]] = []

    def add(
        name: str, variant: str, ours: float | None, bound: float | None, detail: str, at_least: bool = False
    ) -> None:
        met = None if ours is None or bound is None else (ours >= bound if at_least else ours <= bound)
        rows.append(
            {"target": name, "variant": variant, "value": ours, "bound": bound, "met": met, "detail": detail}
        )

    raw = results.get("raw", {}).get("variants", {}).get("dict_to_dataframe_row", {})
    for variant in (v for v in MLSHIP if v in results):
        p50 = _median(slices, variant, "1", "p50_ms")
        add("1 client p50 <= MLServer's", variant, p50, _median(slices, "mlserver", "1", "p50_ms"), "ms")
        model = raw.get("p50_ms")
        add(
            "1 client p50 <= in-process dict->DataFrame + 0.5 ms",
            variant,
            p50,
            None if model is None else model + SLACK_MODEL_MS,
            "ms",
        )
        ratio = _round_ratio(slices, variant, "mlserver", "16")
        add(
            "16 clients throughput >= 2x MLServer's",
            variant,
            ratio,
            2.0,
            "median per-round ratio",
            at_least=True,
        )
        add(
            "16 clients p99 <= MLServer's",
            variant,
            _median(slices, variant, "16", "p99_ms"),
            _median(slices, "mlserver", "16", "p99_ms"),
            "ms",
        )
        add(
            "batch of 1000 <= MLServer's",
            variant,
            results[variant].get("batch1000_ms", {}).get("median"),
            results.get("mlserver", {}).get("batch1000_ms", {}).get("median"),
            "ms",
        )
        cold = results.get("fastapi-naive", {}).get("cold_start", {}).get("predict_s")
        add(
            "cold start <= FastAPI's + 0.5 s",
            variant,
            results[variant].get("cold_start", {}).get("predict_s"),
            None if cold is None else cold + SLACK_COLD_S,
            "s, spawn to first good answer",
        )
    two = results.get("mlship", {}).get("mem_after_load", {}).get("rss_mb")
    one = results.get("mlship-w1", {}).get("mem_after_load", {}).get("rss_mb")
    if two is not None and one is not None:
        add(
            "RSS per worker <= 200 MB",
            "mlship",
            two - one,
            RSS_PER_WORKER_MB,
            f"MB: two-worker tree {two:.0f} minus one-worker tree {one:.0f}",
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("report", type=Path, help="a bench-peers results folder (holds results.json)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = json.loads((args.report / "results.json").read_text())
    rows = targets(report)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"issue 16's targets in {args.report} (model={report['meta']['args'].get('model')}):")
    for row in rows:
        value, bound = row["value"], row["bound"]
        shown = "n/a" if value is None else f"{value:.2f}"
        limit = "n/a" if bound is None else f"{bound:.2f}"
        verdict = {True: "met", False: "NOT met", None: "not measured"}[row["met"]]
        print(f"  {verdict:>12}  {row['target']} [{row['variant']}]: {shown} vs {limit} ({row['detail']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
