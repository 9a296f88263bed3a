"""The example project (examples/notebook_project, as committed) builds from a fresh clone, and the image
answers like the model does locally."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import httpx
import pytest

from mlship.adapters import engine as image
from mlship.build.assemble import BuildResult, build_project
from tests.build_projects import within_schema

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = "examples/notebook_project"


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's committed files only (`git archive HEAD`), as a fresh clone would have them."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", "HEAD", EXAMPLE], capture_output=True, check=True
    ).stdout
    target = tmp_path_factory.mktemp("clone")
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    project = target / EXAMPLE
    assert (project / "mlship.yaml").is_file(), f"{EXAMPLE} is not committed"
    return project


@pytest.fixture(scope="module")
def built(fresh_clone: Path, base_image: str) -> Iterator[BuildResult]:
    tag = f"mlship-test-example:{uuid.uuid4().hex[:12]}"
    yield build_project(fresh_clone, tag=tag, base_image=base_image)
    image.remove(tag)


def test_the_example_builds_from_a_fresh_clone_and_predicts_like_the_local_model(
    built: BuildResult, fresh_clone: Path
) -> None:
    import pandas as pd

    spec = importlib.util.spec_from_file_location("example_solution", fresh_clone / "solution.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.Model()
    model.load(fresh_clone / "model")
    schema = json.loads((fresh_clone / "schema.json").read_text())
    target = schema["target"]["name"]
    frame = pd.read_csv(fresh_clone / "data" / "test.csv")
    rows = json.loads(frame.drop(columns=[target]).to_json(orient="records"))
    accepted = [row for row in rows if within_schema(row, schema)]
    assert len(accepted) >= 0.9 * len(rows)
    expected = model.predict(pd.DataFrame(accepted, columns=[c["name"] for c in schema["columns"]]))

    with image.run(built.image_ref, read_only=True, tmpfs={"/tmp": "rw,size=64m"}) as running:
        image.wait_ready(running, timeout=180)
        assert httpx.get(f"{running.url}/health/ready", timeout=5).status_code == 200
        answer = httpx.post(f"{running.url}/predict", json=accepted, timeout=120)

    assert answer.status_code == 200, answer.text[:500]
    assert answer.json()["predictions"] == list(expected)
