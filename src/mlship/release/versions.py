"""Releases: versions from the registry's tags, the labels a release carries, listing and rollback.

The registry is the source of truth: a release is an image tagged `vN` (and `git-<sha>`) whose labels hold
the gate's metrics; `live` is a tag that points at one of them and moves only after a successful push.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from mlship.errors import BelowBaseline, UsageError
from mlship.project.metric_names import LOWER_IS_BETTER

if TYPE_CHECKING:
    from mlship.adapters.registry import Registry
    from mlship.project.config import Project

LIVE_TAG = "live"
METRICS_LABEL = "dev.mlship.metrics"
TEST_DATA_LABEL = "dev.mlship.test-data-sha256"
LATENCY_P50_LABEL = "dev.mlship.verify-p50-ms"
LATENCY_P99_LABEL = "dev.mlship.verify-p99-ms"
FORCED_LABEL = "dev.mlship.forced-reason"
VERSION_LABEL = "org.opencontainers.image.version"
REVISION_LABEL = "org.opencontainers.image.revision"
CREATED_LABEL = "org.opencontainers.image.created"

_VERSION = re.compile(r"^v(\d+)$")


class Release(BaseModel):
    """One released version as the registry describes it."""

    version: str
    digest: str | None
    created: str | None
    revision: str | None
    metrics: dict[str, float]
    live: bool


class Comparison(BaseModel):
    """One metric of the candidate against the live release."""

    metric: str
    candidate: float
    live: float
    change: float
    allowed_drop: float
    passed: bool


def version_number(tag: str) -> int | None:
    match = _VERSION.match(tag)
    return int(match.group(1)) if match else None


def versions_newest_first(tags: list[str]) -> list[str]:
    """The `vN` tags, highest N first."""
    numbered = [(n, tag) for tag in tags if (n := version_number(tag)) is not None]
    return [tag for _, tag in sorted(numbered, reverse=True)]


def next_version(tags: list[str]) -> str:
    """`v1` for an empty repository, else one more than the highest `vN` tag."""
    numbers = [n for n in (version_number(tag) for tag in tags) if n is not None]
    return f"v{max(numbers, default=0) + 1}"


def metrics_from_labels(labels: dict[str, str]) -> dict[str, float]:
    """The gate's metrics recorded on a release (empty when the label is missing or unreadable)."""
    try:
        raw = json.loads(labels.get(METRICS_LABEL, "{}"))
    except json.JSONDecodeError:
        return {}
    return (
        {str(k): float(v) for k, v in raw.items() if isinstance(v, int | float)}
        if isinstance(raw, dict)
        else {}
    )


def metrics_label(metrics: dict[str, float]) -> str:
    return json.dumps(
        {name: round(value, 6) for name, value in sorted(metrics.items())}, separators=(",", ":")
    )


def compare_with_live(
    candidate: dict[str, float], live: dict[str, float], max_drop: float
) -> list[Comparison]:
    """Each metric both releases have: may the candidate replace live (worse by at most max_drop)?"""
    rows = []
    for name in sorted(set(candidate) & set(live)):
        change = candidate[name] - live[name]
        worse_by = change if name in LOWER_IS_BETTER else -change
        rows.append(
            Comparison(
                metric=name,
                candidate=candidate[name],
                live=live[name],
                change=change,
                allowed_drop=max_drop,
                passed=worse_by <= max_drop + 1e-12,
            )
        )
    return rows


def refuse_if_worse(rows: list[Comparison], live_version: str) -> None:
    failed = [row for row in rows if not row.passed]
    if failed:
        detail = ", ".join(f"{r.metric} {r.candidate:.4f} vs live {r.live:.4f}" for r in failed)
        raise BelowBaseline(
            f"worse than the live release {live_version} by more than evaluation.against_live.max_drop="
            f"{failed[0].allowed_drop}: {detail}",
            hint="improve the model, or override with --force --reason 'why this release may be worse'",
        )


def live_version(registry: Registry, repo: str, tags: list[str]) -> str | None:
    """Which `vN` the `live` tag points at (by digest), or None when nothing is live."""
    if LIVE_TAG not in tags:
        return None
    live_digest = registry.manifest_digest(repo, LIVE_TAG)
    for tag in versions_newest_first(tags):
        if registry.manifest_digest(repo, tag) == live_digest:
            return tag
    return None


def list_releases(registry: Registry, repo: str) -> list[Release]:
    """Every `vN` in the repository, newest first, with its metrics and whether it is live."""
    tags = registry.tags(repo)
    live_digest = registry.manifest_digest(repo, LIVE_TAG) if LIVE_TAG in tags else None
    releases = []
    for tag in versions_newest_first(tags):
        digest = registry.manifest_digest(repo, tag)
        labels = registry.labels(repo, tag)
        releases.append(
            Release(
                version=tag,
                digest=digest,
                created=labels.get(CREATED_LABEL),
                revision=labels.get(REVISION_LABEL),
                metrics=metrics_from_labels(labels),
                live=digest is not None and digest == live_digest,
            )
        )
    return releases


class RollbackResult(BaseModel):
    repository: str
    previous: str | None
    live: str
    digest: str | None


def rollback(registry: Registry, repo: str, version: str | None = None) -> RollbackResult:
    """Point `live` at `version` (default: the release before the live one) without rebuilding or pulling."""
    releases = list_releases(registry, repo)
    if not releases:
        raise UsageError(
            f"{registry.host}/{repo} has no releases to roll back to",
            hint="deploy first with 'mlship deploy'",
        )
    current = next((r for r in releases if r.live), None)
    if version is None:
        if current is None:
            raise UsageError(
                "nothing is live, so there is no previous release",
                hint="name the version: 'mlship rollback v1'",
            )
        older = [
            r for r in releases if (version_number(r.version) or 0) < (version_number(current.version) or 0)
        ]
        if not older:
            raise UsageError(f"{current.version} is the oldest release; there is nothing to roll back to")
        version = older[0].version
    target = next((r for r in releases if r.version == version), None)
    if target is None:
        known = ", ".join(r.version for r in releases)
        raise UsageError(f"{registry.host}/{repo} has no release '{version}' (it has: {known})")
    registry.retag(repo, target.version, LIVE_TAG)
    return RollbackResult(
        repository=f"{registry.host}/{repo}",
        previous=current.version if current else None,
        live=target.version,
        digest=target.digest,
    )


def release_labels(
    version: str,
    revision: str | None,
    created: str,
    metrics: dict[str, float],
    test_data_sha256: str,
    forced_reason: str | None,
) -> dict[str, str]:
    """The labels `mlship deploy` adds to a release at build time."""
    labels: dict[str, Any] = {
        VERSION_LABEL: version,
        CREATED_LABEL: created,
        METRICS_LABEL: metrics_label(metrics),
        TEST_DATA_LABEL: test_data_sha256,
    }
    if revision:
        labels[REVISION_LABEL] = revision
    if forced_reason:
        labels[FORCED_LABEL] = forced_reason
    return {key: str(value) for key, value in labels.items()}


def registry_host(project: Project, given: str | None) -> str:
    """The registry a command about releases talks to: --registry, else image.registry in mlship.yaml."""
    host = given or project.config.image.registry
    if not host:
        raise UsageError(
            "no registry given", hint="set image.registry in mlship.yaml or pass --registry HOST"
        )
    return host
