"""`mlship score --engine spark` on a real local Spark (local[2], Java 17): the same predictions, row ids and
rejects as the in-process engine on the same file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlship.cli import app
from tests.gate_projects import TARGET, make_frame, make_project
from tests.integration.conftest import unavailable

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def spark() -> Iterator[None]:
    """One Spark session for the module (mlship's session() reuses it); stopped at the end."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("pyspark") is None or shutil.which("java") is None:
        unavailable("pyspark (pip install -e '.[dev]') or java (scripts/ops-tools.sh) is missing")
    from mlship.ops.factory.spark import session

    started = session()
    yield
    started.stop()


def _score(tmp_path: Path, project: Path, source: Path, engine: str) -> tuple[dict[str, object], Path]:
    out = tmp_path / f"{engine}.parquet"
    result = CliRunner().invoke(
        app,
        [
            "score",
            str(source),
            "--out",
            str(out),
            "-C",
            str(project),
            "--engine",
            engine,
            "--chunk-rows",
            "200",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), out


def test_spark_gives_the_in_process_predictions(spark: None, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    frame = make_frame(700, seed=21).drop(columns=[TARGET])
    frame["amount"] = frame["amount"].astype(object)
    frame.loc[10, "amount"] = "oops"
    frame.loc[650, "channel"] = "fax"
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    local, local_out = _score(tmp_path, project, source, "local")
    on_spark, spark_out = _score(tmp_path, project, source, "spark")
    assert on_spark["engine"] == "spark"
    for key in ("rows", "scored", "rejected", "reject_reasons", "model_version"):
        assert on_spark[key] == local[key], key
    assert on_spark["rejected"] == 2
    expected = pd.read_parquet(local_out)
    got = pd.read_parquet(spark_out).sort_values("row_id").reset_index(drop=True)
    assert len(expected) == 698
    pd.testing.assert_frame_equal(got, expected, check_dtype=True)
    rejects = pd.concat(pd.read_csv(part) for part in sorted((tmp_path / "spark.rejects.csv").glob("*.csv")))
    assert sorted(rejects["row_id"]) == [10, 650]
    assert set(rejects["reject_reason"]) == set(pd.read_csv(tmp_path / "local.rejects.csv")["reject_reason"])
