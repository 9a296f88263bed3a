"""`mlship retrain` through the CLI: each data guard stops it (exit 11, the column named, nothing written);
a challenger that misses its thresholds is refused (exit 5, nothing written); a good one is blessed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlship.build.context import blessing_label, manifest_sha256
from mlship.cli import app
from mlship.project.config import load_project
from tests.gate_projects import TARGET, folder_digest, make_frame, make_retrain_project

FRESHNESS = "retrain:\n  guards: {time_column: ts, max_age_hours: 48}\n"


def _new_data(rows: int = 800) -> pd.DataFrame:
    frame = make_frame(rows, seed=31)
    frame["ts"] = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    return frame


def _nulls(frame: pd.DataFrame) -> pd.DataFrame:
    frame["amount"] = frame["amount"].mask(frame.index % 5 == 0)
    return frame


def _stale(frame: pd.DataFrame) -> pd.DataFrame:
    frame["ts"] = (datetime.now(timezone.utc) - timedelta(days=10)).isoformat()
    return frame


def _one_class(frame: pd.DataFrame) -> pd.DataFrame:
    frame[TARGET] = 0
    return frame


def _shifted(frame: pd.DataFrame) -> pd.DataFrame:
    frame["amount"] = frame["amount"] * 6
    return frame


def _wrong_type(frame: pd.DataFrame) -> pd.DataFrame:
    frame["items"] = "many"
    return frame


BREACHES = {
    "rows": (lambda frame: frame.head(50), None, "50 rows, fewer than min_rows=200"),
    "columns": (_wrong_type, "items", "expected an integer"),
    "nulls": (_nulls, "amount", "20.0% empty values"),
    "freshness": (_stale, "ts", "h old (max_age_hours=48)"),
    "balance": (_one_class, TARGET, "class 1 is 0.00% of the rows"),
    "shift": (_shifted, "amount", "distribution shifted from training"),
}


@pytest.mark.parametrize("guard", list(BREACHES))
def test_each_data_guard_stops_the_retrain_naming_the_column_and_writes_nothing(
    runner: CliRunner, tmp_path: Path, guard: str
) -> None:
    change, column, words = BREACHES[guard]
    project = make_retrain_project(tmp_path / "p", extra=FRESHNESS)
    change(_new_data()).to_csv(tmp_path / "new.csv", index=False)
    before = folder_digest(project)
    result = runner.invoke(app, ["retrain", "--data", str(tmp_path / "new.csv"), str(project), "--json"])
    assert result.exit_code == 11, result.output
    error = json.loads(result.stdout)
    assert error["kind"] == "DataGuardBreach"
    assert f"data guard '{guard}'" in error["error"] and words in error["error"]
    if column is not None:
        assert f"column '{column}'" in error["error"]
    assert "Traceback" not in result.output
    assert folder_digest(project) == before


def test_clean_data_blesses_the_challenger_with_its_record(runner: CliRunner, tmp_path: Path) -> None:
    project = make_retrain_project(tmp_path / "p", extra=FRESHNESS)
    _new_data().to_csv(tmp_path / "new.csv", index=False)
    before = folder_digest(project)
    result = runner.invoke(app, ["retrain", "--data", str(tmp_path / "new.csv"), str(project), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["blessed"] and report["champion"] is None
    assert [guard["guard"] for guard in report["guards"]] == [
        "rows",
        "columns",
        "nulls",
        "freshness",
        "balance",
        "shift",
    ]
    assert (report["rows"], report["holdout_rows"]) == (800, 200)
    record = json.loads((project / "blessing.json").read_text())
    assert record["data_sha256"] == report["data_sha256"] and len(record["holdout_sha256"]) == 64
    assert {metric["name"] for metric in record["challenger"]} == {"f1", "roc_auc", "accuracy"}
    after = folder_digest(project)
    # the challenger is now the project's model, hashed as `mlship build` hashes it, so the build labels it
    assert after["model/model.joblib"] != before["model/model.joblib"]
    model_sha256 = manifest_sha256({"model/model.joblib": after["model/model.joblib"]})
    assert record["artifacts_sha256"] == model_sha256
    assert blessing_label(load_project(project), model_sha256) is not None


def test_a_challenger_below_its_thresholds_is_refused_with_exit_5_and_nothing_written(
    runner: CliRunner, tmp_path: Path
) -> None:
    project = make_retrain_project(tmp_path / "p", metrics={"accuracy": {"min": 0.999}})
    _new_data().to_csv(tmp_path / "new.csv", index=False)
    before = folder_digest(project)
    result = runner.invoke(app, ["retrain", "--data", str(tmp_path / "new.csv"), str(project), "--json"])
    assert result.exit_code == 5, result.output
    report = json.loads(result.stdout)
    assert not report["blessed"] and "accuracy" in report["reason"] and report["blessing"] is None
    assert folder_digest(project) == before
