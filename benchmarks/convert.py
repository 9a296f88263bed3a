"""How much converting a notebook costs on top of running it: `python benchmarks/convert.py [--repeat N]`.

For every notebook of the corpus that converts (tests/data/notebooks/expected.yaml) and the example
(examples/notebook_project/notebooks/fraud_detection.ipynb), it times

  run      executing the notebook alone with nbclient in a fresh kernel (as "Restart & Run All"; in a copy of
           its folder made before the clock starts, so that it writes nothing into the repository)
  convert  `convert_notebook` into a temporary folder (copy, run, analyse, write, verify the project)

and prints both, the ratio convert/run and a summary. Target: conversion adds at most 30 % (ratio ≤ 1.30).
With --repeat N each is measured N times, alternating, and the fastest of each is kept.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "notebooks"
EXAMPLE = ROOT / "examples" / "notebook_project" / "notebooks" / "fraud_detection.ipynb"
TARGET_RATIO = 1.30


def notebooks() -> list[Path]:
    expected = yaml.safe_load((CORPUS / "expected.yaml").read_text())
    found = [CORPUS / f"{name}.ipynb" for name, spec in expected.items() if spec["outcome"] == "converted"]
    return [*found, EXAMPLE] if EXAMPLE.is_file() else found


def run_alone(notebook: Path) -> float:
    """Seconds to execute the notebook with nbclient (kernel start to kernel shutdown)."""
    import nbformat
    from nbclient import NotebookClient

    from mlship.adapters.jupyter_support import choose_kernel

    with tempfile.TemporaryDirectory(prefix="mlship-bench-") as scratch:
        copy = Path(scratch) / notebook.parent.name
        shutil.copytree(notebook.parent, copy)
        if notebook.parent.name == "notebooks" and (notebook.parent.parent / "data").is_dir():
            shutil.copytree(notebook.parent.parent / "data", Path(scratch) / "data")
        started = time.perf_counter()
        nb = nbformat.read(str(copy / notebook.name), as_version=4)
        kernel, _, specs = choose_kernel(nb)
        from jupyter_client.manager import AsyncKernelManager

        client = NotebookClient(
            nb,
            km=AsyncKernelManager(kernel_name=kernel, kernel_spec_manager=specs),
            timeout=900,
            resources={"metadata": {"path": str(copy)}},
        )
        client.execute(cwd=str(copy))
        client.km = None
        return time.perf_counter() - started


def convert(notebook: Path) -> float:
    """Seconds for `convert_notebook` into a temporary folder."""
    from mlship.convert import convert_notebook

    with tempfile.TemporaryDirectory(prefix="mlship-bench-") as scratch:
        started = time.perf_counter()
        convert_notebook(notebook, Path(scratch) / "project", name="bench", force=True, progress=False)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="measure each N times, keep the fastest")
    parser.add_argument("--only", action="append", help="only notebooks whose name contains this")
    options = parser.parse_args()
    selected = [nb for nb in notebooks() if not options.only or any(part in nb.stem for part in options.only)]
    print(f"{'notebook':40} {'run s':>7} {'convert s':>10} {'ratio':>6}")
    ratios: list[float] = []
    extra: list[float] = []
    for notebook in selected:
        runs, conversions = [], []
        for _ in range(options.repeat):
            runs.append(run_alone(notebook))
            conversions.append(convert(notebook))
        alone, converted = min(runs), min(conversions)
        ratios.append(converted / alone)
        extra.append(converted - alone)
        flag = "" if converted / alone <= TARGET_RATIO else "  > target"
        print(f"{notebook.stem:40} {alone:7.2f} {converted:10.2f} {converted / alone:6.2f}{flag}", flush=True)
    if not ratios:
        return
    within = sum(ratio <= TARGET_RATIO for ratio in ratios)
    print(
        f"\n{len(ratios)} notebooks: ratio median {statistics.median(ratios):.2f}, mean "
        f"{statistics.mean(ratios):.2f}, max {max(ratios):.2f}; conversion adds "
        f"{statistics.median(extra):.2f} s (median); {within}/{len(ratios)} within the target of "
        f"{TARGET_RATIO:.2f}"
    )


if __name__ == "__main__":
    main()
