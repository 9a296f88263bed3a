"""`mlship deploy --canary W`: the release is pushed without moving `live`, then started as a canary; a bad
weight or a model `mlship retrain` did not bless is refused before anything is built (unless --force); the
first release of a project becomes live instead. The deploy
and the registry are fakes here (the real rollout is tests/integration/test_k8s_rollout.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mlship.errors import BelowBaseline, ExitCode, UsageError
from mlship.ops.k8s import rollout


class FakeResult:
    def __init__(self, previous_live: str | None) -> None:
        self.version = "v2"
        self.previous_live = previous_live
        self.tags = ["v2"]


class FakeRegistry:
    def __init__(self) -> None:
        self.retagged: list[tuple[str, str, str]] = []

    def retag(self, repo: str, src: str, tag: str) -> str:
        self.retagged.append((repo, src, tag))
        return "sha256:" + "0" * 64


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {"registry": FakeRegistry()}

    def fake_deploy(project: Any, **options: Any) -> FakeResult:
        seen["deploy"] = options
        return FakeResult(seen.get("previous_live"))

    def fake_target(project: Any, registry: Any, output: Any) -> Any:
        return rollout.Target(project=None, registry=seen["registry"], repo="shipit", directory=Path("."))  # type: ignore[arg-type]

    def fake_canary(target: Any, version: str, weight: int, apply: bool = False) -> str:
        seen["canary"] = (version, weight)
        return "started"

    monkeypatch.setattr("mlship.release.deploy.deploy", fake_deploy)
    monkeypatch.setattr(rollout, "target", fake_target)
    monkeypatch.setattr(rollout, "canary", fake_canary)
    monkeypatch.setattr(rollout, "CanaryDeploy", lambda **kw: kw)
    config = SimpleNamespace(
        name="shipit",
        model=SimpleNamespace(artifacts="model/"),
        retrain=SimpleNamespace(blessing="blessing.json"),
    )
    monkeypatch.setattr(rollout, "load_project", lambda project: SimpleNamespace(config=config))
    monkeypatch.setattr("mlship.build.context.is_blessed", lambda project: seen.get("blessed", True))
    return seen


def test_deploy_canary_leaves_live_and_starts_the_canary(calls: dict[str, Any]) -> None:
    calls["previous_live"] = "v1"
    result = rollout.deploy_canary(".", "127.0.0.1:5000", 5, force=False)
    assert calls["deploy"] == {"registry_host": "127.0.0.1:5000", "move_live": False, "force": False}
    assert calls["canary"] == ("v2", 5)
    assert calls["registry"].retagged == []
    assert result["canary"] == "started"


def test_the_first_release_with_canary_becomes_live(calls: dict[str, Any]) -> None:
    result = rollout.deploy_canary(".", None, 5)
    assert calls["registry"].retagged == [("shipit", "v2", "live")]
    assert "canary" not in calls and result["canary"] is None
    assert result["deploy"].tags == ["v2", "live"]


def test_a_bad_weight_is_refused_before_anything_is_built(calls: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match="outside 0–100"):
        rollout.deploy_canary(".", None, 150)
    assert "deploy" not in calls


def test_an_unblessed_model_is_refused_before_anything_is_built(calls: dict[str, Any]) -> None:
    calls["blessed"] = False
    with pytest.raises(BelowBaseline, match="not blessed") as caught:
        rollout.deploy_canary(".", None, 5)
    assert caught.value.exit_code == ExitCode.BELOW_BASELINE
    assert "mlship retrain" in (caught.value.hint or "") and "--force" in (caught.value.hint or "")
    assert "deploy" not in calls


def test_force_releases_an_unblessed_model_as_a_canary(calls: dict[str, Any]) -> None:
    calls["blessed"], calls["previous_live"] = False, "v1"
    rollout.deploy_canary(".", None, 5, force=True, reason="test: hotfix")
    assert calls["deploy"]["force"] is True and calls["canary"] == ("v2", 5)
