"""Fallback benchmark: what ``fallback:`` costs on the normal path (issue 19: p50 at 1 client within 5 %).

    python benchmarks/fallback.py [--duration 3] [--rounds 7] [--json]

The project of benchmarks/serving.py (a scikit-learn pipeline on 20 numeric features) is served by real
``python -m mlship.serving`` processes, one worker each, all up at once: as it is, and with ``fallback:``
naming a spare class (a constant rule) that never has to answer here (the main model is quick and never
fails, so each request pays only the breaker check, the deadline timer and the timed model call). wrk
drives each in turn at 1 client, in rotating rounds, next to a second plain service (the control: its
ratio to the first is the noise floor of the machine); the report gives each one's median p50 and p99
and the median of the per-round p50 ratios to the plain service (the drift between rounds cancels).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving import WRK_SCRIPT, make_project, running, wrk  # noqa: E402

SPARE = '''

class Spare:
    """The benchmark's spare: a constant answer."""

    def predict(self, rows):
        return [0] * len(rows)
'''
FALLBACK = {
    "model": "Spare",
    "deadline_ms": 200,
    "failures": 5,
    "window_s": 30,
    "cooldown_s": 10,
    "successes": 3,
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per load run (default 3)")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (default 7)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    args = parser.parse_args()
    names = ("plain", "control", "fallback")  # control: a second plain service, the noise floor
    with tempfile.TemporaryDirectory(prefix="mlship-bench-fallback-") as folder:
        roots = {name: Path(folder) / name for name in names}
        for root in roots.values():
            root.mkdir()
            make_project(root, 1)
            (root / "load.lua").write_text(WRK_SCRIPT % {"rows": root / "rows.jsonl", "path": "/predict"})
        spare = roots["fallback"]
        (spare / "solution.py").write_text((spare / "solution.py").read_text() + SPARE)
        service = json.loads((spare / "service.json").read_text())
        (spare / "service.json").write_text(json.dumps({**service, "fallback": FALLBACK}))
        p50: dict[str, list[float]] = {name: [] for name in names}
        p99: dict[str, list[float]] = {name: [] for name in names}
        ratios: dict[str, list[float]] = {"fallback": [], "control": []}
        log = Path(folder) / "services.log"
        with contextlib.ExitStack() as stack:
            ports = {
                name: stack.enter_context(running("mlship", root, 1, log, sys.executable))[0]
                for name, root in roots.items()
            }
            for name, port in ports.items():
                wrk(port, 1, 1, roots[name] / "load.lua")  # warm-up
            for round_ in range(args.rounds):
                order = names[round_ % 3 :] + names[: round_ % 3]
                figures = {}
                for name in order:
                    data = wrk(ports[name], 1, args.duration, roots[name] / "load.lua")
                    if data["errors"] or data["non2xx"]:
                        sys.exit(f"{name}: {data['errors']} errors, {data['non2xx']} non-2xx answers")
                    figures[name] = data
                    p50[name].append(data["p50_us"] / 1000)
                    p99[name].append(data["p99_us"] / 1000)
                for name in ratios:
                    ratios[name].append(figures[name]["p50_us"] / figures["plain"]["p50_us"])
    result = {
        "p50_ms": {name: round(statistics.median(values), 3) for name, values in p50.items()},
        "p99_ms": {name: round(statistics.median(values), 3) for name, values in p99.items()},
        "p50_ratio_to_plain": {name: round(statistics.median(v), 4) for name, v in ratios.items()},
        "rounds": args.rounds,
        "duration_s": args.duration,
    }
    if args.json:
        print(json.dumps(result))
    else:
        p50_ms, ratio = result["p50_ms"], result["p50_ratio_to_plain"]
        print(
            f"1 client, {args.rounds} rounds of {args.duration:g} s, p50: plain {p50_ms['plain']} ms, "
            f"with fallback {p50_ms['fallback']} ms (median ratio {ratio['fallback']}); "
            f"a second plain service {p50_ms['control']} ms (ratio {ratio['control']}: the noise floor)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
