"""`mlship retrain` against a real registry: the live champion's model is read out of its image by digest
(no pull, no container), scored on the same held-out rows as the challenger; a better challenger is blessed,
a worse one refused with exit 5, and the registry is never changed by either. The blessed challenger then
goes out with `deploy --canary 5` (live stays, the image carries the blessing); an unblessed model is
refused with exit 5 and nothing pushed."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlship.adapters import engine as image
from mlship.adapters.registry import Registry
from mlship.errors import MlshipError
from mlship.ops.k8s.state import read_state
from tests.gate_projects import folder_digest
from tests.integration.test_deploy import make_worse, mlship

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DUMMY_TRAIN = '''

def train(data_dir):  # type: ignore[no-untyped-def]
    """A worse challenger: always the majority class."""
    from sklearn.dummy import DummyClassifier

    frame = pd.read_csv(data_dir / "train.csv")
    return DummyClassifier(strategy="prior").fit(frame.drop(columns=[TARGET]), frame[TARGET])
'''


def snapshot(host: str, repo: str) -> dict[str, str | None]:
    with Registry(host) as client:
        return {tag: client.manifest_digest(repo, tag) for tag in client.tags(repo)}


@pytest.fixture
def released(
    tmp_path: Path, registry_url: str, base_image: str, init_project: Callable[[str, Path], Path]
) -> Iterator[tuple[Path, str]]:
    """A scaffolded project whose live v1 is a weak model (one feature), released to the registry under a
    repository no other test uses; its manifests are deleted afterwards."""
    name = f"factory-{uuid.uuid4().hex[:10]}"
    project = init_project(name, tmp_path / name)
    make_worse(project)
    config = project / "mlship.yaml"
    config.write_text(
        config.read_text()
        .replace("f1: {min: 0.90}", "f1: {min: 0.0}")
        .replace("roc_auc: {min: 0.95}", "roc_auc: {min: 0.0}")
    )
    deployed = mlship(
        "deploy", str(project), "--registry", registry_url, "--base-image", base_image, "--json"
    )
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    yield project, name
    with Registry(registry_url) as client:
        for digest in set(snapshot(registry_url, name).values()) - {None}:
            client.delete_manifest(name, str(digest))
    left = [f"{registry_url}/{name}:{v}" for v in ("v1", "v2")] + [f"{name}:{t}" for t in ("v1", "v2", "dev")]
    for ref in left:  # the images the deploys left (v2 only where a canary was released)
        with contextlib.suppress(MlshipError):
            image.remove(ref)


def deploy_canary(project: Path, registry_url: str, base_image: str) -> subprocess.CompletedProcess[str]:
    return mlship(
        "deploy",
        str(project),
        "--canary",
        "5",
        "--registry",
        registry_url,
        "--base-image",
        base_image,
        "--json",
    )


def test_retrain_blesses_a_better_challenger_and_refuses_a_worse_one(
    released: tuple[Path, str], registry_url: str, base_image: str
) -> None:
    project, repo = released
    before = snapshot(registry_url, repo)
    assert before["live"] == before["v1"]
    new_data = project / "data" / "train.csv"

    better = mlship("retrain", "--data", str(new_data), str(project), "--registry", registry_url, "--json")
    assert better.returncode == 0, better.stderr[-3000:]
    report = json.loads(better.stdout)
    assert report["blessed"], report["reason"]
    assert report["champion"]["version"] == "v1" and report["champion"]["digest"] == before["v1"]
    by_metric = {row["metric"]: row for row in report["comparison"]}
    assert by_metric["roc_auc"]["challenger"] > by_metric["roc_auc"]["champion"]
    blessing = json.loads((project / "blessing.json").read_text())
    assert blessing["champion"]["digest"] == before["v1"] and blessing["git_revision"] is None
    assert snapshot(registry_url, repo) == before

    # the blessed challenger goes out as a 5 % canary: live stays v1, the image carries the blessing
    canary = deploy_canary(project, registry_url, base_image)
    assert canary.returncode == 0, canary.stderr[-3000:]
    released_now = snapshot(registry_url, repo)
    assert released_now["live"] == before["v1"] and released_now["v2"] not in (None, before["v1"])
    with Registry(registry_url) as client:
        state = read_state(client, repo)
        label = json.loads(client.labels(repo, "v2")["dev.mlship.blessing"])
    assert state.live == "v1" and state.canary is not None
    assert (state.canary.version, state.canary.weight) == ("v2", 5)
    assert label["sha256"] == hashlib.sha256((project / "blessing.json").read_bytes()).hexdigest()

    (project / "blessing.json").unlink()
    solution = project / "solution.py"
    solution.write_text(solution.read_text().replace("def train(", "def _strong_train(") + DUMMY_TRAIN)
    files = folder_digest(project)
    worse = mlship("retrain", "--data", str(new_data), str(project), "--registry", registry_url, "--json")
    assert worse.returncode == 5, worse.stderr[-3000:]
    refused = json.loads(worse.stdout)
    assert not refused["blessed"] and "does not beat the live champion v1" in refused["reason"]
    assert folder_digest(project) == files
    assert snapshot(registry_url, repo) == released_now

    # nothing blessed the model now in the project: a canary of it is refused, and nothing is pushed
    unblessed = deploy_canary(project, registry_url, base_image)
    assert unblessed.returncode == 5, unblessed.stderr[-3000:]
    assert "not blessed" in json.loads(unblessed.stdout)["error"]
    assert snapshot(registry_url, repo) == released_now


def test_score_with_a_release_reads_its_model_from_the_registry(
    released: tuple[Path, str], registry_url: str, tmp_path: Path
) -> None:
    import joblib
    import pandas as pd

    project, _ = released
    rows = pd.read_csv(project / "data" / "test.csv").drop(columns=["label"])
    rows.to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "scores.parquet"
    result = mlship(
        "score",
        str(tmp_path / "rows.csv"),
        "--out",
        str(out),
        "--version",
        "live",
        "-C",
        str(project),
        "--registry",
        registry_url,
        "--json",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["model_version"] == "v1"
    scored = pd.read_parquet(out)
    released_model = joblib.load(project / "model" / "model.joblib")  # the weak model deployed as v1
    assert list(scored["prediction"]) == list(released_model.predict(rows))
    assert set(scored["model_version"]) == {"v1"}
