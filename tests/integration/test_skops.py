"""`model.format: skops` on the real engine: the project builds (skops frozen into the lock, the trusted types
labelled), serves, and verifies; the same image with a skops file that refers to an unrecorded type
(`os.system`) is refused at start with one log line and exit code 3."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlship.adapters import engine as image
from mlship.build.assemble import BuildResult, build_project
from mlship.release.verify_image import verify_image

pytestmark = pytest.mark.integration
pytest.importorskip("skops")

# The `mlship init` template's solution.py, saving and loading the model with skops.
SKOPS_SOLUTION = '''\
"""A breast-cancer classifier saved with skops: loading it creates only the types the build recorded."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

try:  # in the image: the serving runtime's loader, which trusts exactly the types the build recorded
    from mlship_serving.artifacts import load
except ImportError:  # on this machine (mlship test, mlship serve): mlship's copy of it
    from mlship.serving.artifacts import load

HERE = Path(__file__).resolve().parent
TARGET = "label"
MODEL_FILE = "model.skops"


def train(data_dir: Path):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = pd.read_csv(data_dir / "train.csv")
    features, labels = frame.drop(columns=[TARGET]), frame[TARGET]
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, labels)


class Model:
    def load(self, artifacts: Path) -> None:
        self.estimator = load(Path(artifacts) / MODEL_FILE)
        self.classes_ = list(self.estimator.classes_)

    def predict(self, rows: pd.DataFrame):  # type: ignore[no-untyped-def]
        return self.estimator.predict(rows)

    def predict_proba(self, rows: pd.DataFrame):  # type: ignore[no-untyped-def]
        return self.estimator.predict_proba(rows)


def main() -> None:
    import skops.io

    estimator = train(HERE / "data")
    (HERE / "model").mkdir(exist_ok=True)
    skops.io.dump(estimator, HERE / "model" / MODEL_FILE)
    print(f"trained {type(estimator).__name__} -> model/{MODEL_FILE}", file=sys.stderr)


if __name__ == "__main__":
    main()
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `mlship init` template, switched to skops: solution.py, mlship.yaml, the trained model."""
    from mlship.project.scaffold import create_project

    root = tmp_path_factory.mktemp("skops") / "skops-model"
    create_project("skops-model", root)
    (root / "solution.py").write_text(SKOPS_SOLUTION)
    (root / "model" / "model.joblib").unlink()
    subprocess.run([sys.executable, "solution.py"], cwd=root, check=True, timeout=300)
    config = (root / "mlship.yaml").read_text()
    assert "artifacts: model/}" in config
    (root / "mlship.yaml").write_text(
        config.replace("artifacts: model/}", "artifacts: model/, format: skops}")
    )
    return root


@pytest.fixture(scope="module")
def built(project: Path, base_image: str) -> Iterator[BuildResult]:
    result = build_project(project, tag=f"mlship-test-skops:{uuid.uuid4().hex[:8]}", base_image=base_image)
    yield result
    image.remove(result.image_ref)


def a_row(project: Path) -> dict[str, Any]:
    import pandas as pd

    row = pd.read_csv(project / "data" / "test.csv").drop(columns=["label"]).iloc[0]
    return {str(key): float(value) for key, value in row.items()}


def test_a_skops_project_builds_serves_and_verifies(built: BuildResult, project: Path) -> None:
    import httpx

    assert json.loads(built.labels["dev.mlship.model.trusted_types"]) == {"model/model.skops": []}
    assert built.labels["dev.mlship.model.format"] == "skops"
    assert "\nskops==" in built.requirements_path.read_text()  # added by the build, not by requirements.in
    assert "skops" not in (project / "requirements.in").read_text()
    record = json.loads(image.read_file(built.image_ref, "/app/project/artifact-trust.json"))
    assert record == {"format": "skops", "trusted_types": {"model/model.skops": []}}
    assert verify_image(built.image_ref).ok

    with image.run(built.image_ref) as container:
        image.wait_ready(container, timeout=120)
        assert container.url is not None
        answer = httpx.post(f"{container.url}/predict", json=a_row(project), timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] in ([0], [1])


def test_a_skops_file_with_an_unrecorded_type_is_refused_at_start(
    built: BuildResult, project: Path, tmp_path: Path
) -> None:
    """The image's model is swapped for one that refers to os.system, and service.json's hash is fixed up
    to match (so only the skops check stands in the way): the container exits 3 with one log line."""
    import os

    import skops.io
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    fitted = skops.io.load(project / "model" / "model.skops", trusted=[])
    evil = Pipeline([("run", FunctionTransformer(os.system)), ("model", fitted)])
    buffer = io.BytesIO()
    skops.io.dump(evil, buffer)
    content = buffer.getvalue()
    service = json.loads(image.read_file(built.image_ref, "/app/project/service.json"))
    service["artifact_sha256"]["model/model.skops"] = hashlib.sha256(content).hexdigest()
    context = tmp_path / "context"
    context.mkdir()
    (context / "evil.skops").write_bytes(content)
    (context / "service.json").write_text(json.dumps(service))
    (context / "Dockerfile").write_text(
        f"FROM {built.image_id}\n"
        "COPY evil.skops /app/project/model/model.skops\n"
        "COPY service.json /app/project/service.json\n"
    )
    derived = image.build(context, f"mlship-test-skops-evil:{uuid.uuid4().hex[:8]}").ref
    try:
        with image.run(derived) as container:
            deadline = time.monotonic() + 120
            while (code := container.exit_code()) is None and time.monotonic() < deadline:
                time.sleep(0.5)
            logs = container.logs()
        report = verify_image(derived)
    finally:
        image.remove(derived)

    assert code == 3, logs
    errors = [line for line in logs.splitlines() if '"level":"error"' in line.replace(" ", "")]
    assert len(errors) == 1, logs
    event = json.loads(errors[0])
    assert event["event"] == "startup_failed"
    assert event["message"] == (
        "artifact model/model.skops: holds type(s) the build did not record: posix.system "
        "(recorded: none); refusing to load it"
    )
    assert not report.ok and report.checks[0].path == "/app/project/model/model.skops"
