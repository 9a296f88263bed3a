"""`mlship deploy` on the real engine and a real registry: versions, live, rollback, and refusals that leave
the registry byte-identical."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from mlship.adapters import engine as image
from mlship.adapters.registry import Registry
from mlship.errors import RegistryError
from tests.integration.conftest import PrivateRegistry

pytestmark = pytest.mark.integration


def mlship(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlship", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
        env={**os.environ, **(env or {})},
    )


def deploy(
    project: Path, registry: PrivateRegistry, base_image: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return mlship(
        "deploy",
        str(project),
        "--registry",
        registry.host,
        "--base-image",
        base_image,
        "--json",
        *extra,
        env=env,
    )


def snapshot(registry: PrivateRegistry, repo: str) -> dict[str, str | None]:
    with Registry(registry.host) as client:
        return {tag: client.manifest_digest(repo, tag) for tag in client.tags(repo)}


def answer(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.stdout, result.stderr[-3000:]
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


@pytest.fixture
def project(tmp_path: Path, init_project: Callable[[str, Path], Path]) -> Path:
    return init_project("shipit", tmp_path / "shipit")


def make_worse(project: Path) -> None:
    """Refit the model on one weak feature: it still beats the majority class, but far less well."""
    train = pd.read_csv(project / "data" / "train.csv")
    features = train.drop(columns=["label"])
    weak = make_pipeline(ColumnTransformer([("one", "passthrough", ["mean texture"])]), LogisticRegression())
    joblib.dump(weak.fit(features, train["label"]), project / "model" / "model.joblib")


def test_deploy_twice_then_releases_and_rollback(
    project: Path, private_registry: PrivateRegistry, base_image: str
) -> None:
    first = deploy(project, private_registry, base_image)
    assert first.returncode == 0, first.stderr[-3000:]
    v1 = answer(first)
    assert v1["version"] == "v1" and v1["previous_live"] is None
    assert v1["verify"]["rows"] == len(pd.read_csv(project / "data" / "test.csv"))
    second = deploy(project, private_registry, base_image)
    assert second.returncode == 0, second.stderr[-3000:]
    v2 = answer(second)
    assert (v2["version"], v2["previous_live"]) == ("v2", "v1")
    assert [row["metric"] for row in v2["against_live"]] == ["f1", "roc_auc"]

    listed = answer(
        mlship("releases", "--project", str(project), "--registry", private_registry.host, "--json")
    )
    assert [(r["version"], r["live"]) for r in listed] == [("v2", True), ("v1", False)]
    assert listed[1]["metrics"]["f1"] == pytest.approx(v1["metrics"][0]["value"], abs=1e-6)

    rolled = mlship("rollback", "--project", str(project), "--registry", private_registry.host, "--json")
    assert rolled.returncode == 0, rolled.stderr
    assert answer(rolled)["live"] == "v1"
    tags = snapshot(private_registry, "shipit")
    assert tags["live"] == tags["v1"] != tags["v2"]
    assert image.pull(f"{private_registry.host}/shipit:live") == image.pull(
        f"{private_registry.host}/shipit:v1"
    )
    labels = image.image_labels(f"{private_registry.host}/shipit:live")
    assert labels["org.opencontainers.image.version"] == "v1"
    assert float(labels["dev.mlship.verify-p99-ms"]) > 0


def test_worse_model_is_refused_by_gate_then_by_live_comparison(
    project: Path, private_registry: PrivateRegistry, base_image: str
) -> None:
    assert deploy(project, private_registry, base_image).returncode == 0
    before = snapshot(private_registry, "shipit")
    make_worse(project)

    refused = deploy(project, private_registry, base_image)
    assert refused.returncode == 5, refused.stderr[-3000:]
    assert "release gate failed" in answer(refused)["error"]
    assert snapshot(private_registry, "shipit") == before

    config = project / "mlship.yaml"
    config.write_text(
        config.read_text()
        .replace("f1: {min: 0.90}", "f1: {min: 0.5}")
        .replace("roc_auc: {min: 0.95}", "roc_auc: {min: 0.5}")
    )
    refused = deploy(project, private_registry, base_image)
    assert refused.returncode == 5, refused.stderr[-3000:]
    message = answer(refused)["error"]
    assert "worse than the live release v1" in message and "f1" in message
    assert snapshot(private_registry, "shipit") == before

    forced = deploy(
        project, private_registry, base_image, "--force", "--reason", "test: accept a weaker model"
    )
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert answer(forced)["forced_reason"] == "test: accept a weaker model"
    assert image.image_labels(f"{private_registry.host}/shipit:v2")["dev.mlship.forced-reason"] == (
        "test: accept a weaker model"
    )


def test_registry_down_and_engine_gone_leave_the_release_live(
    project: Path, private_registry: PrivateRegistry, base_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = deploy(project, private_registry, base_image)
    assert first.returncode == 0, first.stderr[-3000:]
    before = snapshot(private_registry, "shipit")

    private_registry.stop()
    down = deploy(project, private_registry, base_image)
    assert down.returncode == 8, down.stderr[-3000:]
    assert private_registry.host in answer(down)["error"]
    assert "Traceback" not in down.stderr

    private_registry.start()
    from mlship.release import deploy as pipeline

    real_verify = pipeline.verify_image

    def verify_then_stop_registry(*args: Any, **kwargs: Any) -> Any:
        result = real_verify(*args, **kwargs)
        private_registry.stop()  # the registry goes away between verification and push
        return result

    monkeypatch.setattr(pipeline, "verify_image", verify_then_stop_registry)
    with pytest.raises(RegistryError) as caught:
        pipeline.deploy(project, registry_host=private_registry.host, base_image=base_image)
    assert caught.value.exit_code == 8
    private_registry.start()
    assert snapshot(private_registry, "shipit") == before

    gone = deploy(
        project, private_registry, base_image, env={"DOCKER_HOST": "unix:///nonexistent/engine.sock"}
    )
    assert gone.returncode == 6, gone.stderr[-3000:]
    assert "no container engine answers" in answer(gone)["error"]
    assert snapshot(private_registry, "shipit") == before
    assert before["live"] == before["v1"]
