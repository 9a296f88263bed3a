"""Median wall time of `mlship --help` over 10 runs (target: at most 0.3 s).

Usage: python benchmarks/cli_start.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

TARGET_S = 0.3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    executable = shutil.which("mlship")
    command = [executable, "--help"] if executable else [sys.executable, "-m", "mlship", "--help"]
    subprocess.run(command, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(
        f"mlship --help: median {median * 1000:.0f} ms, min {min(times) * 1000:.0f} ms, "
        f"max {max(times) * 1000:.0f} ms over {args.runs} runs (target <= {TARGET_S * 1000:.0f} ms)"
    )
    print("PASS" if median <= TARGET_S else "OVER TARGET")
    return 0 if median <= TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
