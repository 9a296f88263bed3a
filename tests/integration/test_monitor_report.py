"""`mlship monitor report` in the real headless Chromium (Debian `chromium`), offline: the page renders,
fetches nothing, and has one chart per feature of schema.json."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np  # noqa: TID253 - tests build data directly
import pandas as pd  # noqa: TID253
import pytest
from typer.testing import CliRunner

from mlship.cli import app
from mlship.project.schema import infer_schema

pytestmark = pytest.mark.integration

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        from tests.integration.conftest import unavailable

        unavailable("chromium is not installed; run scripts/ops-tools.sh")
    return path


def make_inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """schema.json inferred from training data; a log (with inputs) of two versions whose amounts drifted."""
    rng = np.random.default_rng(0)
    training = pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, 2000),
            "items": rng.integers(1, 10, 2000),
            "channel": rng.choice(["web", "pos", "app"], 2000, p=[0.6, 0.3, 0.1]),
            "member": rng.random(2000) < 0.4,
        }
    )
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(infer_schema(training, pd.Series(rng.integers(0, 2, 2000), name="y"))))
    lines, labels = [], []
    for number in range(400):
        version = "v8" if number % 5 == 0 else "v7"
        row = {
            "amount": float(rng.lognormal(4.5, 1)),  # drifted up
            "items": int(rng.integers(1, 10)),
            "channel": str(rng.choice(["web", "pos", "app"])),
            "member": bool(rng.random() < 0.4),
        }
        request_id = uuid.uuid4().hex
        predicted = int(rng.integers(0, 2))
        record = {
            "ts": 1_700_000_000 + number * 3,
            "event": "prediction",
            "predictions": [predicted],
            "model_version": version,
            "request_id": request_id,
            "inputs": row,
        }
        lines.append(json.dumps(record))
        labels.append({"request_id": request_id, "y": predicted if rng.random() < 0.8 else 1 - predicted})
    log, table = tmp_path / "predictions.jsonl", tmp_path / "labels.csv"
    log.write_text("\n".join(lines) + "\n")
    pd.DataFrame(labels).to_csv(table, index=False)
    return schema, log, table


def test_the_report_renders_offline_with_a_chart_per_feature(tmp_path: Path) -> None:
    browser = chromium()
    schema, log, labels = make_inputs(tmp_path)
    out = tmp_path / "report" / "report.html"
    result = CliRunner().invoke(
        app,
        [
            "monitor",
            "report",
            "--schema",
            str(schema),
            "--log",
            str(log),
            "--labels",
            str(labels),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    psi = {f["feature"]: f["psi"] for f in payload["features"]}
    assert psi["amount"] > 0.2 > psi["items"]  # the drifted feature stands out
    page = out.read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing from elsewhere

    base = [browser, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=60)
    assert dom.returncode == 0, dom.stderr[-2000:]
    charts = re.findall(r'<svg class="feature-chart" data-feature="([^"]+)"', dom.stdout)
    assert sorted(charts) == ["amount", "channel", "items", "member"]
    assert dom.stdout.count("<rect") >= 2 * sum(len(f["bins"]) for f in payload["features"])
    assert 'class="timeline"' in dom.stdout and "v8" in dom.stdout
    assert 'class="accuracy"' in dom.stdout

    shot = tmp_path / "report.png"
    done = subprocess.run(
        [*base, "--window-size=1200,1600", f"--screenshot={shot}", out.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and shot.stat().st_size > 10_000, done.stderr[-2000:]
