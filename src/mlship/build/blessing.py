"""`mlship retrain`'s blessing as the build sees it: carried as a label only when it blessed exactly the
model being built (context.py), and checked by `mlship deploy --canary` before anything is built."""

from __future__ import annotations

import json

from mlship.build.requirements import sha256_file
from mlship.project.config import Project


def blessing_label(project: Project, model_sha256: str) -> str | None:
    """The blessing record (retrain.blessing) as compact JSON, when it blessed these very artefacts; a
    record left from an earlier model is not carried."""
    path = project.root / project.config.retrain.blessing
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(record, dict)
        or not record.get("blessed")
        or record.get("artifacts_sha256") != model_sha256
    ):
        return None
    champion = record.get("champion") or {}
    summary = {
        "sha256": sha256_file(path),
        "created": record.get("created"),
        "data_sha256": record.get("data_sha256"),
        "holdout_sha256": record.get("holdout_sha256"),
        "git_revision": record.get("git_revision"),
        "champion": {"version": champion.get("version"), "digest": champion.get("digest")}
        if champion
        else None,
        "metrics": {
            m.get("name"): m.get("value") for m in record.get("challenger") or [] if isinstance(m, dict)
        },
    }
    return json.dumps(summary, sort_keys=True, separators=(",", ":"))
