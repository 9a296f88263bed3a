"""`mlship score` over 1,000,000 rows against a bare pandas + scikit-learn script on the same rows.

    python benchmarks/score.py [--rows 1000000] [--chunk-rows 20000 100000 200000] [--format csv|parquet]

Writes a small fraud project (a scikit-learn pipeline, schema.json) and an input file of ROWS rows (0.1 %
of them invalid: a text amount, an unseen channel) into a temporary folder, then times two whole commands,
each in its own process:
- bare:   pandas reads the whole file, joblib loads the model, predict, write Parquet (no validation, no
          rejects, no row ids: the least any scoring job does);
- mlship: `mlship score INPUT --out OUT --chunk-rows N --json` for each chunk size.
Prints the wall time of each, the ratio (target ≤ 1.5×), and each command's peak resident memory (its own
VmHWM: ru_maxrss would also count this script's memory, inherited at the fork; for mlship also its model
process's ru_maxrss, an upper bound for the same reason), to show that mlship's memory follows the chunk
size while the bare script's follows the input.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib  # noqa: TID253 - a benchmark script, not part of the CLI
import numpy as np  # noqa: TID253
import pandas as pd  # noqa: TID253
from sklearn.compose import ColumnTransformer  # noqa: TID253
from sklearn.linear_model import LogisticRegression  # noqa: TID253
from sklearn.pipeline import make_pipeline  # noqa: TID253
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: TID253

from mlship.project.schema import infer_schema

FEATURES = ["amount", "items", "hour", "channel", "country"]
TARGET = "is_fraud"
SOLUTION = """\
from pathlib import Path

import joblib


class Model:
    def load(self, artifacts):
        self.estimator = joblib.load(Path(artifacts) / "model.joblib")

    def predict(self, rows):
        return self.estimator.predict(rows)
"""
BARE = """\
import sys
import joblib
import pandas as pd

source, model, out = sys.argv[1:4]
frame = pd.read_parquet(source) if source.endswith(".parquet") else pd.read_csv(source)
estimator = joblib.load(model)
features = ["amount", "items", "hour", "channel", "country"]
frame = frame[features]
frame["amount"] = pd.to_numeric(frame["amount"], errors="coerce").fillna(0.0)
pd.DataFrame({"prediction": estimator.predict(frame)}).to_parquet(out, index=False)
status = open("/proc/self/status").read()
print(int(status.split("VmHWM:")[1].split()[0]) // 1024)
"""


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.gamma(2.0, 120.0, rows).round(2)
    channel = rng.choice(["web", "pos", "app"], rows, p=[0.5, 0.3, 0.2])
    score = (amount - 300) / 60 + np.where(channel == "web", 1.0, -1.0) + rng.normal(0, 0.7, rows)
    return pd.DataFrame(
        {
            "amount": amount,
            "items": rng.integers(1, 10, rows),
            "hour": rng.integers(0, 24, rows),
            "channel": channel,
            "country": rng.choice(["de", "fr", "es", "it", "nl"], rows),
            TARGET: (score > 0).astype(int),
        }
    )


def write_project(root: Path) -> None:
    train = frame(5_000, seed=1)
    features = ColumnTransformer(
        [
            ("num", StandardScaler(), ["amount", "items", "hour"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["channel", "country"]),
        ]
    )
    estimator = make_pipeline(features, LogisticRegression(max_iter=500)).fit(train[FEATURES], train[TARGET])
    (root / "model").mkdir(parents=True)
    joblib.dump(estimator, root / "model" / "model.joblib")
    schema = infer_schema(train[FEATURES], train[TARGET])
    (root / "schema.json").write_text(json.dumps(schema), encoding="utf-8")
    (root / "solution.py").write_text(SOLUTION, encoding="utf-8")
    (root / "data").mkdir()
    train.head(200).to_csv(root / "data" / "test.csv", index=False)
    (root / "mlship.yaml").write_text(
        "name: bench\nevaluation:\n  target: is_fraud\n  metrics: {accuracy: {min: 0.5}}\n", encoding="utf-8"
    )


def write_input(path: Path, rows: int) -> int:
    data = frame(rows, seed=7).drop(columns=[TARGET])
    bad = np.random.default_rng(3).choice(rows, size=max(1, rows // 1000), replace=False)
    data["amount"] = data["amount"].astype(object)
    data.loc[bad[::2], "amount"] = "n/a"
    data.loc[bad[1::2], "channel"] = "fax"
    if path.suffix == ".parquet":
        data["amount"] = data["amount"].astype(str)
        data.to_parquet(path, index=False)
    else:
        data.to_csv(path, index=False)
    return len(bad)


def timed(command: list[str]) -> tuple[float, str]:
    """Wall seconds and stdout of a whole command."""
    started = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{command[:3]} failed with {result.returncode}")
    return seconds, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, nargs="+", default=[20_000, 100_000, 200_000])
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlship-bench-score-") as folder:
        root = Path(folder) / "project"
        root.mkdir()
        write_project(root)
        source = Path(folder) / f"input.{options.format}"
        invalid = write_input(source, options.rows)
        size_mb = source.stat().st_size / 1e6
        print(f"input: {options.rows:,} rows ({invalid:,} invalid), {options.format} {size_mb:.0f} MB")
        script = Path(folder) / "bare.py"
        script.write_text(BARE, encoding="utf-8")
        bare_s, bare_out = timed(
            [
                sys.executable,
                str(script),
                str(source),
                str(root / "model" / "model.joblib"),
                f"{folder}/bare.parquet",
            ]
        )
        print(f"bare pandas + scikit-learn: {bare_s:6.2f} s   peak RSS {int(bare_out.split()[-1]):7d} MB")
        for chunk in options.chunk_rows:
            out = Path(folder) / f"out-{chunk}.parquet"
            command = [sys.executable, "-m", "mlship", "score", str(source), "--out", str(out)]
            command += ["--dir", str(root), "--chunk-rows", str(chunk), "--json"]
            seconds, stdout = timed(command)
            result = json.loads(stdout)
            peak = result["max_rss_mb"]
            print(
                f"mlship score --chunk-rows {chunk:>7,}: {seconds:6.2f} s   peak RSS {peak:7.0f} MB "
                f"(model process {result['model_max_rss_mb']:.0f} MB)   ratio {seconds / bare_s:.2f}x   "
                f"scored {result['scored']:,}, rejected {result['rejected']:,}"
            )
        print("target: ratio ≤ 1.5x; mlship's peak RSS grows with --chunk-rows, not with --rows.")


if __name__ == "__main__":
    main()
