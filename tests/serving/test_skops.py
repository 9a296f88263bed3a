"""Artefacts saved with skops: loaded with exactly the types the build recorded, anything else refused at
start with one log line (in process, and as a real process with a non-zero exit)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlship.serving import StartupError, create_app
from mlship.serving.artifacts import (
    TRUST_FILE,
    ArtifactTrust,
    ArtifactTrustError,
    enforce,
    load,
    untrusted_types,
)

from .conftest import ROW, free_port

pytest.importorskip("skops")

SKOPS_SOLUTION = '''
"""A skops project: the estimator is loaded through the runtime's trust-enforcing loader."""
from pathlib import Path

try:  # in the image: the serving runtime
    from mlship_serving.artifacts import load
except ImportError:  # on this machine: mlship's copy of it
    from mlship.serving.artifacts import load

from features import features


class Model:
    def load(self, artifacts: Path) -> None:
        self.clf = load(Path(artifacts) / "model.skops")
        self.classes_ = self.clf.classes_

    def predict(self, rows):
        return self.clf.predict(features(rows))

    def predict_proba(self, rows):
        return self.clf.predict_proba(features(rows))
'''

FEATURES = '''
import numpy as np


def features(rows):
    return np.column_stack([
        rows["amount"].to_numpy(dtype=float),
        rows["count"].to_numpy(dtype=float),
        (rows["channel"] == "web").to_numpy(dtype=float),
        rows["flag"].to_numpy(dtype=float),
        rows["score"].fillna(0.0).to_numpy(dtype=float),
    ])


def double(x):
    """A function the model refers to: loading it is what skops does not trust by default."""
    return x * 2
'''


def _fit(extra_step: bool) -> Any:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    rng = np.random.default_rng(0)
    x = np.column_stack([rng.uniform(1, 900, 200), rng.integers(0, 50, 200), rng.integers(0, 2, 200),
                         rng.integers(0, 2, 200), rng.uniform(-1, 1, 200)])  # fmt: skip
    y = (x[:, 0] > 300).astype(int)
    if extra_step:
        import features  # the project's module, on sys.path while the test trains

        steps = [FunctionTransformer(features.double), LogisticRegression(max_iter=1000)]
        return make_pipeline(*steps).fit(x, y)
    return LogisticRegression(max_iter=1000).fit(x, y)


def write_skops_project(
    make_project: Callable[..., Path], *, extra_type: bool, recorded: list[str], hashes: bool = True
) -> Path:
    """The serving fixture project with a skops model (optionally referring to `features.double`),
    service.json hashes and an artifact-trust.json recording `recorded` for model/model.skops."""
    import skops.io as sio

    project = make_project(hashes=hashes)
    (project / "solution.py").write_text(SKOPS_SOLUTION)
    (project / "features.py").write_text(FEATURES)
    (project / "model" / "model.joblib").unlink()
    sys.path.insert(0, str(project))
    try:
        sys.modules.pop("features", None)
        sio.dump(_fit(extra_type), project / "model" / "model.skops")
    finally:
        sys.path.remove(str(project))
        sys.modules.pop("features", None)
    service = json.loads((project / "service.json").read_text())
    if hashes:
        service["artifact_sha256"] = {
            "model/model.skops": hashlib.sha256((project / "model" / "model.skops").read_bytes()).hexdigest()
        }
    (project / "service.json").write_text(json.dumps(service))
    record = {"format": "skops", "trusted_types": {"model/model.skops": recorded}}
    (project / TRUST_FILE).write_text(json.dumps(record))
    return project


def start_failure(project: Path) -> tuple[str, list[dict[str, Any]]]:
    from starlette.testclient import TestClient

    log = io.StringIO()
    with (
        pytest.raises(StartupError) as caught,
        TestClient(create_app(project, wait_for_model=True, log_stream=log)),
    ):
        pass
    return str(caught.value), [json.loads(line) for line in log.getvalue().splitlines()]


def test_a_skops_model_with_its_recorded_types_serves(make_project: Callable[..., Path]) -> None:
    from starlette.testclient import TestClient

    plain = write_skops_project(make_project, extra_type=False, recorded=[])
    assert untrusted_types(plain / "model" / "model.skops") == []
    with TestClient(create_app(plain, wait_for_model=True, log_stream=io.StringIO())) as client:
        answer = client.post("/predict", json=ROW)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] in ([0], [1])

    trusted = write_skops_project(make_project, extra_type=True, recorded=["features.double"])
    assert untrusted_types(trusted / "model" / "model.skops") == ["features.double"]
    with TestClient(create_app(trusted, wait_for_model=True, log_stream=io.StringIO())) as client:
        assert client.post("/predict", json=ROW).status_code == 200


def test_a_skops_file_holding_an_unrecorded_type_is_refused_in_one_line(
    make_project: Callable[..., Path],
) -> None:
    project = write_skops_project(make_project, extra_type=True, recorded=[])
    message, lines = start_failure(project)
    assert message == (
        "artifact model/model.skops: holds type(s) the build did not record: features.double "
        "(recorded: none); refusing to load it"
    )
    assert [line["event"] for line in lines] == ["startup_failed"]
    assert lines[0]["message"] == message and "\n" not in message


def test_the_check_runs_before_solution_py_is_imported(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    project = write_skops_project(make_project, extra_type=True, recorded=[])
    marker = tmp_path / "imported"
    source = (project / "solution.py").read_text()
    (project / "solution.py").write_text(f"open({str(marker)!r}, 'w').close()\n{source}")
    assert "refusing to load it" in start_failure(project)[0]
    assert not marker.exists()


def test_an_unrecorded_or_missing_skops_file_is_refused(make_project: Callable[..., Path]) -> None:
    project = write_skops_project(make_project, extra_type=False, recorded=[], hashes=False)
    (project / TRUST_FILE).write_text(json.dumps({"format": "skops", "trusted_types": {}}))
    assert "a skops file the build did not record" in start_failure(project)[0]
    record = {"format": "skops", "trusted_types": {"model/model.skops": [], "model/gone.skops": []}}
    (project / TRUST_FILE).write_text(json.dumps(record))
    message = start_failure(project)[0]
    assert "artifact model/gone.skops: recorded in artifact-trust.json but missing" in message


def test_a_file_that_is_not_skops_is_one_clear_line(make_project: Callable[..., Path]) -> None:
    project = write_skops_project(make_project, extra_type=False, recorded=[], hashes=False)
    (project / "model" / "model.skops").write_bytes(b"not a zip file")
    message = start_failure(project)[0]
    assert message.startswith("model.skops: not a readable skops file (BadZipFile")


def test_load_uses_the_record_when_enforcing_and_the_file_s_own_types_without(
    make_project: Callable[..., Path],
) -> None:
    project = write_skops_project(make_project, extra_type=True, recorded=["features.double"])
    path = project / "model" / "model.skops"
    sys.path.insert(0, str(project))
    try:
        enforce(project, "model/", None)  # a working folder: no record
        import numpy as np

        assert load(path).predict(np.array([[1.0, 2.0, 1.0, 0.0, 0.5]])).shape == (1,)
        enforce(project, "model/", ArtifactTrust.from_file(project / TRUST_FILE))
        assert load(path) is not None
        copy = project / "elsewhere.skops"
        copy.write_bytes(path.read_bytes())
        with pytest.raises(ArtifactTrustError, match="not a skops artefact the build recorded"):
            load(copy)
    finally:
        sys.path.remove(str(project))
        sys.modules.pop("features", None)
        enforce(project, "model/", None)


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        ({"format": "onnx"}, "format: expected one of joblib, pickle, skops"),
        ({"format": "skops", "trusted_types": {"model/m.skops": "x"}}, "trusted_types: expected"),
        ({"format": "skops", "extra": 1}, "expected {'format', 'trusted_types'}"),
    ],
)
def test_the_trust_record_is_validated(record: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ArtifactTrustError, match=fragment.replace("{", r"\{").replace("}", r"\}")):
        ArtifactTrust.from_dict(record)
    assert ArtifactTrust.from_dict({"format": "skops", "trusted_types": {"m": ["b", "a"]}}).to_dict() == {
        "format": "skops",
        "trusted_types": {"m": ["a", "b"]},
    }


@pytest.mark.slow
def test_a_real_service_refuses_the_file_with_exit_3_and_one_log_line(
    make_project: Callable[..., Path],
) -> None:
    project = write_skops_project(make_project, extra_type=True, recorded=[])
    completed = subprocess.run(
        [sys.executable, "-m", "mlship.serving", "--project", str(project), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 3, completed.stdout + completed.stderr
    errors = [
        json.loads(line)
        for line in (completed.stdout + completed.stderr).splitlines()
        if line.startswith("{") and json.loads(line).get("level") == "error"
    ]
    assert [e["event"] for e in errors] == ["startup_failed"], errors
    assert "holds type(s) the build did not record: features.double" in errors[0]["message"]
