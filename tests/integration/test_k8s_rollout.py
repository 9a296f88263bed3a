"""The rollout on a real registry (`docker-registry`): canary → move → abort → canary again → promote → the
next canary → abort, with the tags, the canary record and the tree checked after each step, and every
refusal leaving registry and tree byte-identical."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlship.adapters.registry import Registry
from mlship.ops.k8s.state import CANARY_TAG, read_state
from mlship.project.scaffold import create_project
from tests.integration.k8s_support import OwnRegistry, gate_labels, push_small_release

pytestmark = pytest.mark.integration
REPO = "shipit"


@pytest.fixture(scope="module")
def own_registry(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRegistry]:
    work = tmp_path_factory.mktemp("k8s-registry")
    registry = OwnRegistry(work)
    try:
        for version in ("v1", "v2"):
            push_small_release(registry.host, REPO, version, base_image, gate_labels(version), work)
        # v3: in the registry, but without the gate's record (built and pushed by hand)
        push_small_release(registry.host, REPO, "v3", base_image, {}, work)
        push_small_release(registry.host, REPO, "v4", base_image, gate_labels("v4"), work)
        with Registry(registry.host) as client:
            client.retag(REPO, "v1", "live")
        yield registry
    finally:
        registry.stop()


def mlship(project: Path, registry: OwnRegistry, *args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlship",
            *args,
            "--project",
            str(project),
            "--registry",
            registry.host,
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "PATH": os.environ.get("PATH", "")},
    )
    assert done.stdout, done.stderr[-2000:]
    payload: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, payload


def registry_snapshot(registry: OwnRegistry) -> dict[str, str | None]:
    with Registry(registry.host) as client:
        return {tag: client.manifest_digest(REPO, tag) for tag in sorted(client.tags(REPO))}


def tree_snapshot(tree: Path) -> dict[str, str]:
    return {
        p.relative_to(tree).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(tree.rglob("*"))
        if p.is_file()
    }


def weights(tree: Path) -> dict[str, int]:
    route = yaml.safe_load((tree / "gateway-api" / "httproute.yaml").read_text())
    return {ref["name"]: ref["weight"] for ref in route["spec"]["rules"][-1]["backendRefs"]}


def deployments(tree: Path) -> list[str]:
    return sorted(p.name for p in (tree / "base").glob("deployment-*.yaml"))


REFUSALS = [
    (("canary", "v9", "--weight", "5"), 9, "has no release 'v9'"),
    (("canary", "v3", "--weight", "5"), 5, "no record of passing the gate"),
    (("canary", "v2", "--weight", "101"), 2, "outside 0–100"),
    (("canary", "v2", "--weight", "-1"), 2, "outside 0–100"),
    (("canary", "v1", "--weight", "5"), 2, "already live"),
]
NO_CANARY = [
    (("canary", "--weight", "10"), 10, "no canary"),
    (("promote",), 10, "no canary to promote"),
    (("abort",), 10, "no canary to abort"),
]


def refuse(project: Path, registry: OwnRegistry, cases: list[tuple[tuple[str, ...], int, str]]) -> None:
    """Each case exits with its code and message and leaves registry and tree byte-identical."""
    tree = project / "deploy" / "k8s"
    for args, exit_code, message in cases:
        before = (registry_snapshot(registry), tree_snapshot(tree))
        code, result = mlship(project, registry, *args)
        assert code == exit_code, (args, result)
        assert result["ok"] is False and message in result["error"], (args, result)
        assert (registry_snapshot(registry), tree_snapshot(tree)) == before, args


def test_refusals_touch_neither_registry_nor_tree(own_registry: OwnRegistry, tmp_path: Path) -> None:
    project = create_project(REPO, tmp_path / REPO).project
    assert mlship(project, own_registry, "manifests")[0] == 0
    refuse(project, own_registry, REFUSALS + NO_CANARY)


def test_canary_move_abort_again_promote_on_a_real_registry(
    own_registry: OwnRegistry, tmp_path: Path
) -> None:
    project = create_project(REPO, tmp_path / REPO).project
    tree = project / "deploy" / "k8s"

    code, result = mlship(project, own_registry, "manifests")
    assert code == 0, result
    assert (result["live"], result["canary"]) == ("v1", None)
    assert weights(tree) == {"shipit-v1": 100}
    with Registry(own_registry.host) as client:
        v1_digest = client.manifest_digest(REPO, "v1")
        v2_digest = client.manifest_digest(REPO, "v2")
    image = yaml.safe_load((tree / "base" / "deployment-v1.yaml").read_text())["spec"]["template"]["spec"]
    assert image["containers"][0]["image"] == f"{own_registry.host}/{REPO}@{v1_digest}"

    code, again = mlship(project, own_registry, "manifests")
    assert code == 0 and again["written"] == [] and again["removed"] == []  # idempotent
    said = subprocess.run(
        [sys.executable, "-m", "mlship", "manifests", "-p", str(project), "--registry", own_registry.host],
        capture_output=True,
        text=True,
        check=False,
    )
    assert said.returncode == 0 and said.stdout == "", said.stderr
    assert f"{own_registry.host}/{REPO}: live v1 100 %" in said.stderr and "unchanged" in said.stderr

    code, result = mlship(project, own_registry, "canary", "v2", "--weight", "5")
    assert code == 0, result
    assert weights(tree) == {"shipit-v1": 95, "shipit-v2": 5}
    assert "base/deployment-v2.yaml" in result["written"]
    with Registry(own_registry.host) as client:
        state = read_state(client, REPO)
        canary_labels = client.labels(REPO, CANARY_TAG)
        assert client.manifest_digest(REPO, "live") == v1_digest
    assert (state.live, state.canary and state.canary.version, state.canary and state.canary.weight) == (
        "v1",
        "v2",
        5,
    )
    assert canary_labels["org.opencontainers.image.version"] == "v2"  # the canary tag is the v2 image

    refuse(project, own_registry, REFUSALS)  # while a canary is under way, too

    code, result = mlship(project, own_registry, "canary", "--weight", "25")
    assert code == 0, result
    assert weights(tree) == {"shipit-v1": 75, "shipit-v2": 25}
    assert result["written"] == ["gateway-api/httproute.yaml"]  # the weights live in the route alone

    code, result = mlship(project, own_registry, "abort")
    assert code == 0, result
    assert weights(tree) == {"shipit-v1": 100, "shipit-v2": 0}
    assert deployments(tree) == ["deployment-v1.yaml", "deployment-v2.yaml"]  # pods stay, ready to move up
    assert registry_snapshot(own_registry)["live"] == v1_digest

    code, result = mlship(project, own_registry, "canary", "v2", "--weight", "5")
    assert code == 0, result
    assert weights(tree) == {"shipit-v1": 95, "shipit-v2": 5}

    code, result = mlship(project, own_registry, "promote")
    assert code == 0, result
    assert (result["live"], result["canary"]) == ("v2", None)
    assert weights(tree) == {"shipit-v2": 100}
    assert deployments(tree) == ["deployment-v2.yaml"]
    assert "base/deployment-v1.yaml" in result["removed"]
    tags = registry_snapshot(own_registry)
    assert tags["live"] == v2_digest
    assert CANARY_TAG not in tags
    assert (tags["v1"], tags["v2"]) == (v1_digest, v2_digest)  # releases untouched
    refuse(project, own_registry, NO_CANARY[1:])

    code, result = mlship(project, own_registry, "canary", "v4", "--weight", "5")  # the next canary
    assert code == 0, result
    assert weights(tree) == {"shipit-v2": 95, "shipit-v4": 5}
    assert deployments(tree) == ["deployment-v2.yaml", "deployment-v4.yaml"]
    code, result = mlship(project, own_registry, "abort")
    assert code == 0, result
    assert weights(tree) == {"shipit-v2": 100, "shipit-v4": 0}
    assert registry_snapshot(own_registry)["live"] == v2_digest
