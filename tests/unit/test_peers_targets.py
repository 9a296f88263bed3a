"""benchmarks/peers_targets.py reads a bench-peers report and says which of issue 16's targets are met."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "peers_targets.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("peers_targets", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def slices(rps_1: list[float], p50: float, rps_16: list[float], p99: float) -> dict[str, Any]:
    return {
        "1": [{"round": r, "rps": v, "p50_ms": p50, "p99_ms": p50 * 3} for r, v in enumerate(rps_1)],
        "16": [{"round": r, "rps": v, "p50_ms": p99 / 3, "p99_ms": p99} for r, v in enumerate(rps_16)],
    }


def report(mlship_p50: float, mlship_rps_16: list[float]) -> dict[str, Any]:
    def result(batch: float, cold: float, rss: float) -> dict[str, Any]:
        return {
            "batch1000_ms": {"median": batch},
            "cold_start": {"predict_s": cold},
            "mem_after_load": {"rss_mb": rss},
        }

    return {
        "meta": {"args": {"model": "lr"}},
        "results": {
            "raw": {"variants": {"dict_to_dataframe_row": {"p50_ms": 1.7}}},
            "mlserver": result(11.0, 3.0, 420),
            "fastapi-naive": result(25.0, 1.6, 180),
            "mlship": result(10.0, 1.8, 390),
            "mlship-w1": result(10.0, 1.7, 215),
        },
        "slices": {
            "mlserver": slices([400, 400, 400], 2.0, [400, 500, 100], 60.0),
            "mlship": slices([500, 500, 500], mlship_p50, mlship_rps_16, 12.0),
            "mlship-w1": slices([500, 500, 500], 1.9, [2000, 2000, 2000], 13.0),
        },
    }


def verdicts(rows: list[dict[str, Any]], variant: str) -> dict[str, bool | None]:
    return {row["target"]: row["met"] for row in rows if row["variant"] == variant}


def test_every_target_met_and_the_per_round_ratio_median() -> None:
    rows = load().targets(report(1.8, [1000, 900, 150]))  # ratios 2.5, 1.8, 1.5 -> median 1.8
    mlship = verdicts(rows, "mlship")
    assert mlship["16 clients throughput >= 2x MLServer's"] is False
    assert all(met for name, met in mlship.items() if not name.startswith("16 clients throughput"))
    assert all(verdicts(rows, "mlship-w1").values())
    rss = next(row for row in rows if row["target"].startswith("RSS"))
    assert rss["value"] == 175 and rss["met"] is True


def test_a_slow_single_request_is_not_met_and_a_missing_target_is_not_judged() -> None:
    rows = load().targets(report(2.1, [1000, 1000, 1000]))
    mlship = verdicts(rows, "mlship")
    assert mlship["1 client p50 <= MLServer's"] is False
    assert mlship["1 client p50 <= in-process dict->DataFrame + 0.5 ms"] is True
    assert "mlship-image" not in {row["variant"] for row in rows}
