"""The build side of `model.format: skops`: the staged trust record and label, the runtime requirement, and
refusals (no .skops file, an unreadable one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlship.build.context import (
    LABEL_MODEL_FORMAT,
    LABEL_MODEL_TRUSTED_TYPES,
    StagedContext,
    runtime_requirements,
    stage_context,
    stage_service_files,
)
from mlship.build.requirements import FreezeResult, sha256_file
from mlship.errors import BuildFailed
from mlship.project.config import load_project
from tests.build_projects import CONFIG, write_light_project

pytest.importorskip("skops")

LOCK = "# lock\nsix==1.16.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"
SKOPS_CONFIG = CONFIG.replace("model: {solution: solution.py, artifacts: model/}",
                              "model: {solution: solution.py, artifacts: model/, format: skops}")  # fmt: skip


def skops_project(root: Path, *, with_function: bool) -> Path:
    """The light project with a skops model in model/ (referring to `operator.neg` when asked: a function
    skops does not trust by default)."""
    import operator

    import numpy as np
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    write_light_project(root, SKOPS_CONFIG)
    (root / "model" / "threshold.txt").unlink()
    x, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    estimator = LogisticRegression().fit(x, y)
    if with_function:
        estimator = make_pipeline(FunctionTransformer(operator.neg), LogisticRegression()).fit(x, y)
    sio.dump(estimator, root / "model" / "model.skops")
    (root / "requirements.lock.txt").write_text(LOCK)
    return root


def stage(root: Path, target: Path) -> StagedContext:
    lock = FreezeResult(
        lock_path=root / "requirements.lock.txt",
        sha256=sha256_file(root / "requirements.lock.txt"),
        python="3.11",
        resolved_with="3.11",
        reused=False,
        packages=["six==1.16.0"],
        seconds=0.0,
    )
    return stage_context(load_project(root), lock, target, base_image="python:3.11-slim")


def test_the_build_records_the_types_a_skops_file_holds(tmp_path: Path) -> None:
    root = skops_project(tmp_path / "p", with_function=True)
    staged = stage(root, tmp_path / "ctx")
    record = json.loads((tmp_path / "ctx" / "artifact-trust.json").read_text())
    assert record == {"format": "skops", "trusted_types": {"model/model.skops": ["_operator.neg"]}}
    labels = staged.labels
    assert labels[LABEL_MODEL_FORMAT] == "skops"
    assert json.loads(labels[LABEL_MODEL_TRUSTED_TYPES]) == {"model/model.skops": ["_operator.neg"]}
    assert (
        'dev.mlship.model.trusted_types="{\\"model/model.skops\\":[\\"_operator.neg\\"]}"'
        in (tmp_path / "ctx" / "Dockerfile").read_text()
    )


def test_a_plain_estimator_records_no_extra_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = skops_project(tmp_path / "p", with_function=False)
    stage(root, tmp_path / "ctx")
    record = json.loads((tmp_path / "ctx" / "artifact-trust.json").read_text())
    assert record["trusted_types"] == {"model/model.skops": []}
    assert "model/model.skops (skops): the image trusts these types: none beyond skops's defaults" in (
        " ".join(capsys.readouterr().err.split())
    )


def test_joblib_projects_record_their_format_and_no_types(tmp_path: Path) -> None:
    root = write_light_project(tmp_path / "p")
    (root / "requirements.lock.txt").write_text(LOCK)
    staged = stage(root, tmp_path / "ctx")
    assert json.loads((tmp_path / "ctx" / "artifact-trust.json").read_text()) == {
        "format": "joblib",
        "trusted_types": {},
    }
    assert LABEL_MODEL_TRUSTED_TYPES not in staged.labels


def test_mlship_serve_stages_no_trust_record(tmp_path: Path) -> None:
    root = skops_project(tmp_path / "p", with_function=True)
    files = stage_service_files(load_project(root), tmp_path / "serve", record_hashes=False)
    assert files.trusted_types == {} and not (tmp_path / "serve" / "artifact-trust.json").exists()


def test_a_skops_project_without_a_skops_file_or_with_a_broken_one_fails_the_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = skops_project(tmp_path / "p", with_function=False)
    (root / "model" / "model.skops").rename(root / "model" / "model.joblib")
    with pytest.raises(BuildFailed, match=r"model.format: skops, but the artefacts \(model/model.joblib\)"):
        stage(root, tmp_path / "ctx1")
    assert "model/model.joblib: model.format is skops, but this file is pickled" in capsys.readouterr().err
    (root / "model" / "model.joblib").rename(root / "model" / "model.skops")
    (root / "model" / "model.skops").write_bytes(b"not a zip")
    with pytest.raises(BuildFailed, match=r"^model/model.skops: not a readable skops file \(BadZipFile"):
        stage(root, tmp_path / "ctx2")


def test_skops_is_a_runtime_requirement_only_for_skops_projects(tmp_path: Path) -> None:
    runtime = tmp_path / "requirements.txt"
    runtime.write_text("starlette>=0.37\nnumpy>=1.24\n")
    assert runtime_requirements("joblib", runtime, tmp_path / "state") == runtime
    with_skops = runtime_requirements("skops", runtime, tmp_path / "state")
    assert with_skops.parent == tmp_path / "state"
    assert with_skops.read_text() == "starlette>=0.37\nnumpy>=1.24\nskops>=0.16  # model.format: skops\n"
