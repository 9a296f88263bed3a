"""What watching the model costs the service: drift counters and the prediction log, on against off.

    python benchmarks/monitor_cost.py [--duration 3] [--rounds 5] [--apart] [--json]

The serving benchmark's project (a scikit-learn pipeline on 20 numeric features, see benchmarks/serving.py)
gets a training reference in schema.json (quantile bins for every feature), so every accepted row is
counted into 20 × 6 bins. Two ``python -m mlship.serving`` services run at once from the same virtualenv:
**on** (the defaults: drift counters, and the prediction log on stdout into a file) and **off**
(``MLSHIP_DRIFT=off``, ``MLSHIP_PREDICTION_LOG=off``). wrk loads them in turn, in rounds, at 1 and 16
connections; the report gives, per round and as medians, p50 at one client and req/s at 16 clients, and
the ratio on / off within each round (so the machine's drift between rounds cancels). The issue's budget:
both within 5 %.

``--apart`` adds three more services: **drift** (counters only), **log** (prediction log only) and a second
**off** (``off-again``), so each part's cost is shown alone and the off/off-again ratio shows how far two
identical services differ on this machine (the noise floor of every other ratio).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import serving as bench  # noqa: E402 - the serving benchmark's project, services and wrk


def add_reference(project: Path) -> None:
    """The training reference of the benchmark's N(0, 1) features: quantiles and exact bins."""
    import numpy as np

    schema = json.loads((project / "schema.json").read_text())
    training = np.random.default_rng(42).normal(size=5000)
    levels = (0.01, 0.25, 0.5, 0.75, 0.99)
    edges = np.quantile(training, levels)
    shares = np.bincount(np.searchsorted(edges, training, side="left"), minlength=6) / len(training)
    for column in schema["columns"]:
        column["observed"] = {
            "null_fraction": 0.0,
            "quantiles": {str(q): float(v) for q, v in zip(levels, edges, strict=True)},
            "bins": {"edges": edges.tolist(), "shares": shares.tolist()},
        }
    (project / "schema.json").write_text(json.dumps(schema))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per load run (default 3)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--apart", action="store_true", help="also drift alone, log alone, off twice")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    args = parser.parse_args()
    python = bench.runtime_python()
    with tempfile.TemporaryDirectory(prefix="mlship-monitor-bench-") as folder:
        project = Path(folder) / "project"
        bench.make_project(project, 0)
        service_file = project / "service.json"
        data = json.loads(service_file.read_text())
        data["serving"]["workers"] = "auto"
        service_file.write_text(json.dumps(data))
        add_reference(project)
        script = project / "load.lua"
        script.write_text(bench.WRK_SCRIPT % {"rows": project / "rows.jsonl", "path": "/predict"})
        modes = {
            "on": {"MLSHIP_DRIFT": "on", "MLSHIP_PREDICTION_LOG": "stdout"},
            "off": {"MLSHIP_DRIFT": "off", "MLSHIP_PREDICTION_LOG": "off"},
        }
        if args.apart:
            modes["drift"] = {"MLSHIP_DRIFT": "on", "MLSHIP_PREDICTION_LOG": "off"}
            modes["log"] = {"MLSHIP_DRIFT": "off", "MLSHIP_PREDICTION_LOG": "stdout"}
            modes["off-again"] = dict(modes["off"])
        figures: dict[str, dict[str, list[float]]] = {m: {"p50_1_ms": [], "rps_16": []} for m in modes}
        with contextlib.ExitStack() as stack:
            ports = {
                mode: stack.enter_context(
                    bench.running("mlship", project, "auto", project / f"{mode}.log", python, env)
                )[0]
                for mode, env in modes.items()
            }
            for port in ports.values():
                bench.wrk(port, 16, 1, script)  # warm-up
            for round_ in range(1, args.rounds + 1):
                order = list(modes) if round_ % 2 else list(reversed(modes))
                for mode in order:
                    one = bench.wrk(ports[mode], 1, args.duration, script)
                    many = bench.wrk(ports[mode], 16, args.duration, script)
                    figures[mode]["p50_1_ms"].append(one["p50_us"] / 1000)
                    figures[mode]["rps_16"].append(many["rps"])
                    print(
                        f"round {round_} {mode:>9}: p50 at 1 client {one['p50_us'] / 1000:.3f} ms, "
                        f"{many['rps']:.0f} req/s at 16",
                        file=sys.stderr,
                    )
            logged = sum(1 for line in (project / "on.log").open() if '"event":"prediction"' in line)
            metrics = bench.request(ports["on"], "GET", "/metrics")[1].decode()
            counted = sum(
                int(float(line.rsplit(" ", 1)[1]))
                for line in metrics.splitlines()
                if line.startswith("mlship_feature_rows_total{") and 'feature="f0"' in line
            )

    def ratio(mode: str, figure: str) -> float:
        pairs = zip(figures[mode][figure], figures["off"][figure], strict=True)
        return statistics.median(a / b for a, b in pairs)

    result: dict[str, Any] = {
        "rounds": args.rounds,
        "p50_1_client_ms": {m: statistics.median(f["p50_1_ms"]) for m, f in figures.items()},
        "rps_16_clients": {m: statistics.median(f["rps_16"]) for m, f in figures.items()},
        "p50_ratio_on_off": ratio("on", "p50_1_ms"),
        "rps_ratio_on_off": ratio("on", "rps_16"),
        "ratios_to_off": {
            m: {"p50_1_client": ratio(m, "p50_1_ms"), "rps_16_clients": ratio(m, "rps_16")}
            for m in modes
            if m != "off"
        },
        "prediction_records_logged": logged,
        "rows_counted_feature_f0": counted,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"p50 at 1 client: on {result['p50_1_client_ms']['on']:.3f} ms, off "
            f"{result['p50_1_client_ms']['off']:.3f} ms "
            f"(on/off median ratio {result['p50_ratio_on_off']:.3f})\n"
            f"req/s at 16 clients: on {result['rps_16_clients']['on']:.0f}, off "
            f"{result['rps_16_clients']['off']:.0f} "
            f"(on/off median ratio {result['rps_ratio_on_off']:.3f})\n"
            f"check: {logged} prediction records logged, {counted} rows of f0 counted into drift bins"
        )
        if args.apart:
            for mode, ratios in result["ratios_to_off"].items():
                print(
                    f"{mode:>9} / off: p50 at 1 client {ratios['p50_1_client']:.3f}, "
                    f"req/s at 16 {ratios['rps_16_clients']:.3f}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
