"""A short soak (benchmarks/soak.py): 16 clients against a real service process, no error, no memory growth.

The benchmark itself runs for minutes (``python benchmarks/soak.py``); this runs it for 20 s.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.serial]

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


def load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mlship_bench_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_a_20_second_soak_at_16_clients_has_no_error_and_no_memory_growth(tmp_path: Path) -> None:
    soak = load_soak()
    result = soak.run_soak(20.0, clients=16, warmup=6.0, max_requests=200_000, workdir=tmp_path)
    print(
        f"\nsoak: {result.requests} requests ({result.requests_per_s}/s), p50 {result.p50_ms} ms, "
        f"p99 {result.p99_ms} ms, RSS {result.rss_start_mb} -> {result.rss_end_mb} MB"
    )
    assert result.errors == 0, result.error_samples
    assert 18 <= result.seconds < 40  # it stops by itself at its time bound
    assert result.requests >= 2000, result  # it was load, not a trickle
    assert result.refused_as_expected > 0  # the invalid rows were sent and refused, not counted as errors
    assert result.rss_start_mb > 50  # the serving processes were measured (a worker holds pandas)
    assert result.rss_growth_pct < 10, result.rss_samples_mb
