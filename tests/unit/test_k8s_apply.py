"""`--apply`: `kubectl apply -k` on the gateway-api overlay only when kubectl and a context exist; a canary
new to the tree is applied at weight 0 first and takes its weight after `kubectl rollout status`. kubectl is a
fake script on PATH here that records what it was asked and the route's weights at that moment."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from mlship.errors import UsageError
from mlship.ops.k8s import rollout
from mlship.project.config import Project, parse_config

FAKE_KUBECTL = """#!/bin/sh
echo "$*" >> "$KUBECTL_LOG"
case "$1" in
  config) [ -n "$KUBECTL_CONTEXT" ] && echo "$KUBECTL_CONTEXT" && exit 0; exit 1 ;;
  apply) grep 'weight' "$3/httproute.yaml" | tr -d ' ' | tr '\\n' ' ' >> "$KUBECTL_LOG"
         echo >> "$KUBECTL_LOG" ;;
  rollout) [ -z "$KUBECTL_NOT_READY" ] || { echo "timed out" >&2; exit 1; } ;;
esac
exit 0
"""


@pytest.fixture
def kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "kubectl"
    script.write_text(FAKE_KUBECTL)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "kubectl.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin:/bin")
    monkeypatch.setenv("KUBECTL_LOG", str(log))
    monkeypatch.setenv("KUBECTL_CONTEXT", "kind-test")
    return log


class FakeRegistry:
    host = "registry.example.com"

    def manifest_digest(self, repo: str, ref: str) -> str:
        return "sha256:" + ref[-1] * 64


def make_target(tmp_path: Path) -> rollout.Target:
    config = parse_config("name: shipit\nevaluation: {target: y, metrics: {f1: {min: 0.8}}}\n")
    project = Project(root=tmp_path, config=config)
    return rollout.Target(project=project, registry=FakeRegistry(), repo="shipit", directory=tmp_path / "k8s")  # type: ignore[arg-type]


def test_without_kubectl_the_tree_is_left_for_gitops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    applied, note = rollout.kubectl_apply(tmp_path)
    assert not applied and "kubectl is not installed" in note


def test_without_a_context_nothing_is_applied(
    kubectl: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECTL_CONTEXT", "")
    applied, note = rollout.kubectl_apply(tmp_path)
    assert not applied and "no current context" in note
    assert "apply" not in kubectl.read_text()


def test_a_new_canary_is_applied_at_weight_0_then_weighted_after_its_rollout(
    kubectl: Path, tmp_path: Path
) -> None:
    target = make_target(tmp_path)
    rollout.commit(target, "v1", None, 0, [], apply=True)
    kubectl.write_text("")
    result = rollout.commit(target, "v1", "v2", 5, [], apply=True)
    calls = kubectl.read_text().splitlines()
    overlay = str(target.directory / "gateway-api")
    assert calls == [
        "config current-context",
        f"apply -k {overlay}",
        "weight:1 weight:1 weight:100 weight:0 ",
        "rollout status deployment/shipit-v2 --timeout=600s",
        "config current-context",
        f"apply -k {overlay}",
        "weight:1 weight:1 weight:95 weight:5 ",
    ]
    assert result.applied and result.apply_note == f"applied {overlay} to context kind-test"
    route = yaml.safe_load((target.directory / "gateway-api" / "httproute.yaml").read_text())
    assert [ref["weight"] for ref in route["spec"]["rules"][-1]["backendRefs"]] == [95, 5]


def test_moving_a_canary_already_in_the_tree_applies_once(kubectl: Path, tmp_path: Path) -> None:
    target = make_target(tmp_path)
    rollout.commit(target, "v1", "v2", 5, [], apply=False)
    rollout.commit(target, "v1", "v2", 25, [], apply=True)
    assert "rollout status" not in kubectl.read_text()
    assert kubectl.read_text().count("apply -k") == 1


def test_a_canary_whose_pods_never_get_ready_keeps_0_percent(
    kubectl: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = make_target(tmp_path)
    rollout.commit(target, "v1", None, 0, [], apply=True)
    monkeypatch.setenv("KUBECTL_NOT_READY", "1")
    with pytest.raises(UsageError, match="shipit-v2 is not ready .*timed out.* applied at 0 %"):
        rollout.commit(target, "v1", "v2", 5, [], apply=True)
    route = yaml.safe_load((target.directory / "gateway-api" / "httproute.yaml").read_text())
    assert [ref["weight"] for ref in route["spec"]["rules"][-1]["backendRefs"]] == [100, 0]
