"""The rollout as the registry records it, so every machine sees the same canary.

live     a tag on the live release's manifest (moved by deploy, rollback and promote)
canary   a tag on a copy of the canary release's manifest carrying two annotations: which version it
         is and its weight. Same config and layers as `vN` (so it is that image), its own digest.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING

from pydantic import BaseModel

from mlship.errors import BelowBaseline, NotReleased, RegistryError, UsageError
from mlship.release import versions as release

if TYPE_CHECKING:
    from mlship.adapters.registry import Registry

CANARY_TAG = "canary"
CANARY_VERSION = "dev.mlship.canary.version"
CANARY_WEIGHT = "dev.mlship.canary.weight"


class Canary(BaseModel):
    version: str
    weight: int
    digest: str  # of the canary tag's manifest


class RolloutState(BaseModel):
    repository: str
    live: str | None
    canary: Canary | None


def read_state(registry: Registry, repo: str) -> RolloutState:
    """Which version is live, and which is the canary at what weight (None when none, or it is live)."""
    tags = registry.tags(repo)
    live = release.live_version(registry, repo, tags)
    canary = None
    if CANARY_TAG in tags:
        manifest = registry.manifest(repo, CANARY_TAG)
        notes = manifest.json().get("annotations") or {}
        version, weight = notes.get(CANARY_VERSION), notes.get(CANARY_WEIGHT)
        if isinstance(version, str) and version != live and version in tags and str(weight).isdigit():
            canary = Canary(version=version, weight=int(str(weight)), digest=manifest.digest)
    return RolloutState(repository=f"{registry.host}/{repo}", live=live, canary=canary)


def check_weight(weight: int) -> int:
    if not 0 <= weight <= 100:
        raise UsageError(
            f"--weight {weight} is outside 0–100: it is the canary's share of requests in percent",
            hint="e.g. --weight 5 (the live version keeps 95)",
        )
    return weight


def check_released(registry: Registry, repo: str, version: str, tags: list[str]) -> None:
    """Refuse a version the registry does not hold, or one whose labels show it did not pass the gate."""
    if release.version_number(version) is None or version not in tags:
        known = ", ".join(release.versions_newest_first(tags)) or "none"
        raise NotReleased(
            f"{registry.host}/{repo} has no release '{version}' (releases: {known})",
            hint="release it first with 'mlship deploy', or pick one from 'mlship releases'",
        )
    labels = registry.labels(repo, version)
    metrics = release.metrics_from_labels(labels)
    if not metrics or release.TEST_DATA_LABEL not in labels or labels.get(release.VERSION_LABEL) != version:
        raise BelowBaseline(
            f"{registry.host}/{repo}:{version} carries no record of passing the gate (labels "
            f"{release.METRICS_LABEL}, {release.TEST_DATA_LABEL}, {release.VERSION_LABEL}={version})",
            hint="only releases made by 'mlship deploy' (gate passed) can take traffic",
        )


def write_canary(registry: Registry, repo: str, version: str, weight: int) -> str:
    """Point `canary` at a copy of `version`'s manifest annotated with the version and weight."""
    source = registry.manifest(repo, version)
    document = source.json()
    document["annotations"] = {
        **(document.get("annotations") or {}),
        CANARY_VERSION: version,
        CANARY_WEIGHT: str(weight),
    }
    body = json.dumps(document, indent=3).encode()
    return registry.put_manifest(repo, CANARY_TAG, source.media_type, body)


def clear_canary(registry: Registry, repo: str, canary: Canary) -> None:
    """Remove the canary tag (its manifest is mlship's own copy, so deleting it touches no release)."""
    with contextlib.suppress(RegistryError):  # deletes disabled: read_state ignores a canary that is live
        registry.delete_manifest(repo, canary.digest)
