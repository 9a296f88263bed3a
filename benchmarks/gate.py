"""The release gate over 1,000,000 generated rows: time and peak memory, and the chunking bound.

    python benchmarks/gate.py [--rows 1000000] [--chunk-rows 50000 200000]

Writes a small fraud project (a scikit-learn pipeline, schema.json, a CSV of ROWS held-out rows) into a
temporary folder, then runs `mlship.gate.evaluate.run_gate` once per chunk size and prints:
- the wall time and rows per second;
- the parent's peak traced memory (tracemalloc: Python objects and numpy/pandas buffers) and the model
  process's peak RSS (ru_maxrss, which includes the interpreter, pandas, scikit-learn and the model);
- the bound: the parent's peak, minus what it must keep (y_true, predictions, scores), is at most two chunks
  of inputs; the whole table in memory would be far more.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import joblib  # noqa: TID253 - a benchmark script, not part of the CLI
import numpy as np  # noqa: TID253
import pandas as pd  # noqa: TID253
from sklearn.compose import ColumnTransformer  # noqa: TID253
from sklearn.linear_model import LogisticRegression  # noqa: TID253
from sklearn.pipeline import make_pipeline  # noqa: TID253
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: TID253

import mlship.gate.evaluate
from mlship.gate.evaluate import run_gate
from mlship.project.config import load_project
from mlship.project.schema import infer_schema

FEATURES = ["amount", "items", "hour", "channel", "country"]
SOLUTION = """\
from pathlib import Path

import joblib


class Model:
    def load(self, artifacts):
        self.estimator = joblib.load(Path(artifacts) / "model.joblib")
        self.classes_ = list(self.estimator.classes_)

    def predict(self, rows):
        return self.estimator.predict(rows)

    def predict_proba(self, rows):
        return self.estimator.predict_proba(rows)
"""


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.gamma(2.0, 120.0, rows).round(2)
    channel = rng.choice(["web", "pos", "app"], rows, p=[0.5, 0.3, 0.2])
    country = rng.choice(["de", "fr", "es", "it", "nl", "pl"], rows)
    hour = rng.integers(0, 24, rows)
    score = (amount - 300) / 60 + np.where(channel == "web", 1.0, -1.0) + rng.normal(0, 0.7, rows)
    return pd.DataFrame(
        {
            "amount": amount,
            "items": rng.integers(1, 10, rows),
            "hour": hour,
            "channel": channel,
            "country": country,
            "is_fraud": (score > 0).astype(int),
        }
    )


def write_project(root: Path, rows: int) -> Path:
    train = frame(5000, seed=1)
    encode = ColumnTransformer(
        [
            ("num", StandardScaler(), ["amount", "items", "hour"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["channel", "country"]),
        ]
    )
    model = make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(train[FEATURES], train["is_fraud"])
    (root / "model").mkdir(parents=True)
    joblib.dump(model, root / "model" / "model.joblib")
    schema = infer_schema(train[FEATURES], train["is_fraud"])
    (root / "schema.json").write_text(json.dumps(schema), encoding="utf-8")
    (root / "solution.py").write_text(SOLUTION, encoding="utf-8")
    (root / "data").mkdir()
    frame(rows, seed=2).to_csv(root / "data" / "test.csv", index=False)
    return root


def configure(root: Path, chunk_rows: int) -> None:
    (root / "mlship.yaml").write_text(
        "name: gate-benchmark\nevaluation:\n  data: data/test.csv\n  target: is_fraud\n"
        f"  chunk_rows: {chunk_rows}\n  metrics:\n    f1: {{min: 0.8}}\n    roc_auc: {{min: 0.9}}\n"
        "    log_loss: {max: 0.5}\n",
        encoding="utf-8",
    )


class PhasePeaks:
    """Splits tracemalloc's peak: streaming (chunks of inputs in, predictions out) and scoring (the rest)."""

    def __init__(self) -> None:
        self.streaming = 0
        self.scoring = 0
        self._original = mlship.gate.evaluate._Collected.arrays

    def __enter__(self) -> PhasePeaks:
        original = self._original

        def arrays(collected: Any) -> Any:
            self.streaming = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            return original(collected)

        mlship.gate.evaluate._Collected.arrays = arrays  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self.scoring = tracemalloc.get_traced_memory()[1]
        mlship.gate.evaluate._Collected.arrays = self._original  # type: ignore[method-assign]


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_rss_peak() -> int:
    """Reset the process's RSS high-water mark (Linux) and return the current RSS in kB."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS")


def warm_up() -> None:
    """Import what the gate imports lazily, so that tracemalloc counts data, not modules."""
    import sklearn.metrics  # noqa: F401

    from mlship.gate import (
        metrics,  # noqa: F401
        sandbox,  # noqa: F401
    )
    from mlship.project import data as data_source  # noqa: F401
    from mlship.project import schema  # noqa: F401


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, nargs="+", default=[50_000, 200_000])
    args = parser.parse_args()
    mb = 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="mlship-gate-bench-") as folder:
        started = time.perf_counter()
        root = write_project(Path(folder), args.rows)
        size = (root / "data" / "test.csv").stat().st_size
        print(
            f"generated {args.rows:,} rows ({size / mb:.1f} MB CSV) in {time.perf_counter() - started:.1f}s"
        )
        whole = frame(args.rows, seed=2)[FEATURES].memory_usage(deep=True).sum()
        print(f"the whole input table in memory would take {whole / mb:.1f} MB")
        kept_per_row = 8 + 8 + 2 * 8  # y_true, prediction, two probabilities
        kept = args.rows * kept_per_row
        print(f"the gate keeps y_true + predictions + scores: {kept / mb:.1f} MB\n")
        print(
            f"{'chunk_rows':>10} {'seconds':>8} {'rows/s':>9} {'chunk MB':>9} {'streaming peak':>15} "
            f"{'peak - kept':>12} {'≤ 2 chunks':>10} {'scoring peak':>13} {'parent RSS growth':>18} "
            f"{'model RSS':>10}  metrics"
        )
        for chunk_rows in args.chunk_rows:
            configure(root, chunk_rows)
            chunk = frame(chunk_rows, seed=3)[FEATURES].memory_usage(deep=True).sum()
            project = load_project(root)
            warm_up()
            rss_before = reset_rss_peak()
            tracemalloc.start()
            started = time.perf_counter()
            with PhasePeaks() as peaks:
                result = run_gate(project)
            seconds = time.perf_counter() - started
            tracemalloc.stop()
            rss_growth = (_status_kb("VmHWM") - rss_before) / 1024
            beyond = peaks.streaming - kept
            rss = (result.model_max_rss_kb or 0) / 1024
            verdict = "yes" if beyond <= 2 * chunk else "NO"
            values = ", ".join(f"{m.name}={m.value:.3f}" for m in result.metrics if m.value is not None)
            print(
                f"{chunk_rows:>10,} {seconds:>8.1f} {result.rows / seconds:>9,.0f} {chunk / mb:>9.1f} "
                f"{peaks.streaming / mb:>12.1f} MB {beyond / mb:>9.1f} MB {verdict:>10} "
                f"{peaks.scoring / mb:>10.1f} MB {rss_growth:>15.0f} MB {rss:>7.0f} MB  {values}"
            )
        print("\nstreaming peak: the parent's traced memory while reading, validating and predicting chunks;")
        print("peak - kept: that peak minus the y_true/predictions/scores it must keep (the chunk bound);")
        print(
            "scoring peak: joining the kept arrays and computing metrics with scikit-learn (grows with rows);"
        )
        print(
            "parent RSS growth: VmHWM after the gate minus VmRSS before it (Linux; includes the Arrow-backed"
        )
        print("  text columns tracemalloc cannot see, and memory the allocator keeps after freeing it);")
        print("model RSS: the model process's ru_maxrss (interpreter, pandas, scikit-learn, model, a chunk).")


if __name__ == "__main__":
    main()
