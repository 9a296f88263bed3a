"""examples/notebook_project is what `mlship init --from-notebook` makes of its notebook today, and it passes
`mlship test` (the README's demo ships it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "notebook_project"
REGENERATE = (
    "regenerate it: mlship init --from-notebook examples/notebook_project/notebooks/fraud_detection.ipynb "
    "fraud-detector --dir examples/notebook_project --force"
)


def mlship(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlship", *arguments], capture_output=True, text=True, timeout=900
    )


def test_the_example_is_what_the_converter_makes_of_its_notebook(tmp_path: Path) -> None:
    copy = tmp_path / "notebook_project"
    shutil.copytree(EXAMPLE / "notebooks", copy / "notebooks")
    converted = mlship(
        "init",
        "--from-notebook",
        str(copy / "notebooks" / "fraud_detection.ipynb"),
        "fraud-detector",
        "--dir",
        str(copy),
        "--json",
    )
    assert converted.returncode == 0, converted.stderr
    result = json.loads(converted.stdout)
    assert result["variable"] == "grid.best_estimator_"
    assert "best estimator of GridSearchCV" in result["reason"]
    assert [other["name"] for other in result["candidates"]] == ["baseline"]
    for name in ("solution.py", "tests/test_solution.py"):
        assert (copy / name).read_text() == (EXAMPLE / name).read_text(), f"{name} is stale: {REGENERATE}"
    fresh = json.loads((copy / "schema.json").read_text())
    committed = json.loads((EXAMPLE / "schema.json").read_text())
    assert [(c["name"], c["type"]) for c in fresh["columns"]] == [
        (c["name"], c["type"]) for c in committed["columns"]
    ], REGENERATE


def test_the_example_passes_mlship_test() -> None:
    tested = mlship("test", str(EXAMPLE))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "gate passed" in tested.stderr
