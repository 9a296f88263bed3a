"""`mlship score` end to end on a real project: predictions, row ids, version, rejects, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import pandas as pd
from typer.testing import CliRunner

from mlship.cli import app
from tests.gate_projects import FEATURES, TARGET, make_frame, make_project


def _input(path: Path, rows: int = 900) -> pd.DataFrame:
    frame = make_frame(rows, seed=11).drop(columns=[TARGET])
    frame["amount"] = frame["amount"].astype(object)
    frame.loc[5, "amount"] = "lots"
    frame.loc[400, "channel"] = "fax"
    frame.loc[899, "channel"] = None
    frame.to_csv(path, index=False)
    return frame


def test_score_writes_predictions_with_row_ids_and_version_and_every_rejected_row(
    runner: CliRunner, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "p")
    frame = _input(tmp_path / "in.csv")
    out = tmp_path / "scores.parquet"
    result = runner.invoke(
        app,
        [
            "score",
            str(tmp_path / "in.csv"),
            "--out",
            str(out),
            "-C",
            str(project),
            "--chunk-rows",
            "250",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["rows"], report["scored"], report["rejected"]) == (900, 897, 3)
    assert report["reject_reasons"] == {"amount": 1, "channel": 2}
    assert report["model_version"].startswith("project-")
    scored = pd.read_parquet(out)
    assert list(scored.columns) == ["row_id", "prediction", "model_version"]
    assert 5 not in set(scored["row_id"]) and len(scored) == 897
    assert set(scored["model_version"]) == {report["model_version"]}
    estimator = joblib.load(project / "model" / "model.joblib")
    expected = estimator.predict(frame.drop(index=[5, 400, 899])[FEATURES].astype({"amount": float}))
    assert list(scored["prediction"]) == list(expected)
    rejects = pd.read_csv(tmp_path / "scores.rejects.csv")
    assert list(rejects["row_id"]) == [5, 400, 899]
    assert rejects["reject_reason"][0] == "column 'amount': expected a number, got 'lots'"


def test_score_a_parquet_input_and_name_a_missing_column(runner: CliRunner, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    frame = make_frame(300, seed=12).drop(columns=[TARGET])
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    out = tmp_path / "o.parquet"
    ok = runner.invoke(app, ["score", str(tmp_path / "in.parquet"), "--out", str(out), "-C", str(project)])
    assert ok.exit_code == 0, ok.output
    assert len(pd.read_parquet(out)) == 300
    assert pd.read_csv(tmp_path / "o.rejects.csv").empty
    frame.drop(columns=["channel"]).to_parquet(tmp_path / "bad.parquet", index=False)
    bad = runner.invoke(app, ["score", str(tmp_path / "bad.parquet"), "--out", str(out), "-C", str(project)])
    assert bad.exit_code == 1
    assert "has no column 'channel'" in bad.output and "Traceback" not in bad.output
