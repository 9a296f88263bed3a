"""Versions, live comparison and rollback against an in-memory registry."""

from __future__ import annotations

import pytest

from mlship.errors import BelowBaseline, UsageError
from mlship.release.versions import (
    LIVE_TAG,
    compare_with_live,
    list_releases,
    metrics_from_labels,
    metrics_label,
    next_version,
    refuse_if_worse,
    release_labels,
    rollback,
)


class FakeRegistry:
    host = "127.0.0.1:5000"

    def __init__(self) -> None:
        self.manifests: dict[str, str] = {}
        self.config: dict[str, dict[str, str]] = {}

    def push(self, tag: str, digest: str, metrics: dict[str, float]) -> None:
        self.manifests[tag] = digest
        self.config[digest] = release_labels(tag, "abc123", "2026-11-23T00:00:00Z", metrics, "f" * 64, None)

    def tags(self, repo: str) -> list[str]:
        return sorted(self.manifests)

    def manifest_digest(self, repo: str, ref: str) -> str | None:
        return self.manifests.get(ref)

    def labels(self, repo: str, ref: str) -> dict[str, str]:
        return self.config[self.manifests[ref]]

    def retag(self, repo: str, src: str, new_tag: str) -> None:
        self.manifests[new_tag] = self.manifests[src]


@pytest.mark.parametrize(
    ("tags", "expected"),
    [([], "v1"), (["v1"], "v2"), (["v2", "v10", "live", "git-abc", "v9"], "v11"), (["latest", "v01x"], "v1")],
)
def test_next_version(tags: list[str], expected: str) -> None:
    assert next_version(tags) == expected


def test_metrics_round_trip_through_labels() -> None:
    metrics = {"f1": 0.912345678, "roc_auc": 0.97}
    assert metrics_from_labels({"dev.mlship.metrics": metrics_label(metrics)}) == {
        "f1": 0.912346,
        "roc_auc": 0.97,
    }
    assert metrics_from_labels({"dev.mlship.metrics": "not json"}) == {}


def test_higher_is_better_metric_may_drop_by_max_drop_only() -> None:
    rows = compare_with_live({"f1": 0.895, "roc_auc": 0.95}, {"f1": 0.90, "roc_auc": 0.97}, max_drop=0.01)
    assert [(r.metric, r.passed) for r in rows] == [("f1", True), ("roc_auc", False)]
    with pytest.raises(BelowBaseline, match=r"roc_auc 0.9500 vs live 0.9700") as caught:
        refuse_if_worse(rows, "v3")
    assert caught.value.exit_code == 5
    assert "--force --reason" in (caught.value.hint or "")


def test_lower_is_better_metric_direction() -> None:
    rows = compare_with_live({"rmse": 10.5}, {"rmse": 10.0}, max_drop=0.1)
    assert not rows[0].passed
    assert compare_with_live({"rmse": 9.0}, {"rmse": 10.0}, max_drop=0.0)[0].passed


def test_releases_and_rollback() -> None:
    registry = FakeRegistry()
    registry.push("v1", "sha256:1", {"f1": 0.9})
    registry.push("v2", "sha256:2", {"f1": 0.92})
    registry.retag("x", "v2", LIVE_TAG)
    releases = list_releases(registry, "x")  # type: ignore[arg-type]
    assert [(r.version, r.live, r.metrics["f1"]) for r in releases] == [
        ("v2", True, 0.92),
        ("v1", False, 0.9),
    ]
    result = rollback(registry, "x")  # type: ignore[arg-type]
    assert (result.previous, result.live) == ("v2", "v1")
    assert registry.manifests[LIVE_TAG] == "sha256:1"
    with pytest.raises(UsageError, match="oldest release"):
        rollback(registry, "x")  # type: ignore[arg-type]
    assert rollback(registry, "x", "v2").live == "v2"  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="no release 'v7'"):
        rollback(registry, "x", "v7")  # type: ignore[arg-type]
