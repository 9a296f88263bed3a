"""`mlship deploy`: gate → compare with live → build → verify the running image → version → push → live.

Every stage must pass before the next starts, and nothing reaches the registry before the last one: the
push comes after the image has been verified, and `live` (then `git-<commit>`) moves only after the registry
was read back holding this deploy's image under the new version. One deploy of a project at a time runs on
a machine (a lock in `.mlship/deploy.lock`); the read-back catches a deploy from another machine. An
interrupt (Ctrl-C) before `live` moved leaves `live` and every existing tag as they were.
"""

from __future__ import annotations

import fcntl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from rich.markup import escape

from mlship.console import console
from mlship.errors import BelowBaseline, RegistryError, TestsFailed, UsageError
from mlship.gate.evaluate import GateResult, MetricResult
from mlship.project.config import Project, load_project
from mlship.release import versions as release
from mlship.release.verify_http import VerifyResult, measured, verify_image

if TYPE_CHECKING:
    from mlship.adapters.registry import Registry


class DeployResult(BaseModel):
    """What one `mlship deploy` did, for the summary and for `--json`."""

    repository: str
    version: str
    previous_live: str | None
    digest: str
    tags: list[str]
    image_id: str
    metrics: list[MetricResult]
    against_live: list[release.Comparison]
    verify: VerifyResult
    forced_reason: str | None
    seconds: dict[str, float]


class GitState(BaseModel):
    revision: str | None
    dirty: bool


def git_state(root: Path) -> GitState:
    """The commit the project is at and whether its tracked files have uncommitted changes."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False)
    if head.returncode != 0:
        return GitState(revision=None, dirty=False)
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return GitState(revision=head.stdout.strip(), dirty=bool(status.stdout.strip()))


@contextmanager
def deploy_lock(project: Project) -> Iterator[None]:
    """One deploy of a project at a time on this machine: two at once would pick the same version."""
    folder = project.root / ".mlship"
    folder.mkdir(exist_ok=True)
    with (folder / "deploy.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(
                f"another 'mlship deploy' of {project.root} is running",
                hint="wait for it to finish; two deploys at once would race for the version",
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _stage(name: str) -> None:
    console.rule(f"[bold]{name}", align="left", style="dim")


def _gate(project: Project) -> GateResult:
    from mlship.gate.testing import run_test

    report = run_test(project.root)
    if report.pytest is not None and not report.pytest.ok:
        raise TestsFailed(
            f"the project's tests failed ({report.pytest.summary()}); nothing was built or pushed",
            hint="run 'mlship test' to see them",
        )
    gate = report.gate
    if gate is None:
        raise TestsFailed("the release gate did not run", hint="run 'mlship test'")
    if not gate.passed:
        failed = ", ".join(f"{m.name} {m.value} (needs {m.threshold})" for m in gate.failed)
        raise BelowBaseline(
            f"the release gate failed: {failed}; nothing was built or pushed",
            hint="improve the model, or lower the threshold in mlship.yaml if it was too strict",
        )
    spare = report.fallback
    if spare is not None and not spare.passed:
        failed = ", ".join(f"{m.name} {m.value} (needs {m.threshold})" for m in spare.failed)
        raise BelowBaseline(
            f"the fallback model {spare.model} failed its gate: {failed}; nothing was built or pushed",
            hint="improve the spare, or lower fallback.metrics in mlship.yaml if they were too strict",
        )
    for metric in gate.metrics:
        console.print(f"  [green]✓[/] {metric.name} {metric.value} ({metric.threshold})")
    if spare is not None:
        for metric in spare.metrics:
            console.print(
                f"  [green]✓[/] fallback {spare.model}: {metric.name} {metric.value} ({metric.threshold})"
            )
    return gate


def _against_live(
    project: Project,
    registry: Any,
    repo: str,
    tags: list[str],
    gate: GateResult,
    force: bool,
    reason: str | None,
) -> tuple[str | None, list[release.Comparison]]:
    live = release.live_version(registry, repo, tags)
    if live is None:
        console.print("  nothing is live yet: this will be the first release")
        return None, []
    max_drop = project.config.evaluation.against_live
    live_metrics = release.metrics_from_labels(registry.labels(repo, live))
    candidate = measured(gate.metrics)
    rows = release.compare_with_live(candidate, live_metrics, max_drop.max_drop if max_drop else 0.0)
    for row in rows:
        mark = "[green]✓[/]" if row.passed else "[red]✗[/]"
        console.print(
            f"  {mark} {row.metric} {row.candidate:.4f} vs live {live} {row.live:.4f} ({row.change:+.4f})"
        )
    if max_drop is not None:
        try:
            release.refuse_if_worse(rows, live)
        except BelowBaseline:
            if not force:
                raise
            console.print(f"  [yellow]forced[/] past the live comparison: {escape(reason or '')}")
    return live, rows


def _stamp(image_id: str, tag: str, labels: dict[str, str]) -> str:
    """Add labels known only after verification: a FROM-only build adds metadata, not layers."""
    import tempfile

    from mlship.adapters import engine as image

    with tempfile.TemporaryDirectory(prefix="mlship-stamp-") as context:
        (Path(context) / "Dockerfile").write_text(f"FROM {image_id}\n", encoding="utf-8")
        return image.build(Path(context), tag, labels=labels).id


class Published(BaseModel):
    """What the push stage left in the registry: the release's digest and the tags now pointing at it."""

    digest: str
    tags: list[str]


def publish(
    registry: Registry, repo: str, version: str, image_ref: str, revision: str | None, move_live: bool = True
) -> Published:
    """Push the verified image as `repo:version`, check that the registry holds *this* image under that tag,
    then point `live` (unless not `move_live`: a canary decides) and `git-<commit>` at its digest.

    Tags are moved by copying the manifest of our digest, never of a tag another deploy may have replaced.
    Raises RegistryError with `live` unmoved when the version exists before the push, or holds another
    image after it (a deploy of the same project from another machine took the same version)."""
    from mlship.adapters import engine as image

    host = registry.host
    remote = f"{host}/{repo}:{version}"
    try:
        if version in registry.tags(repo):
            raise RegistryError(
                f"{remote} appeared while this deploy ran; nothing was pushed",
                hint="run 'mlship deploy' again: it will take the next version",
            )
        image.tag(image_ref, remote)
        digest = image.push(remote)
        stored = registry.manifest_digest(repo, version)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"stopped while pushing {remote}: live was not moved ({version} may be in the registry without "
            "being live; the next deploy takes the version after it)"
        ) from None
    if stored != digest:
        raise RegistryError(
            f"{remote} holds {stored or 'no image'} right after this deploy pushed {digest}: another deploy "
            f"took {version} at the same time; live was not moved",
            hint="see 'mlship releases', then run 'mlship deploy' again: it will take the next version",
        )
    console.print(f"  [green]✓[/] pushed {remote} ({digest[:19]})")
    tags = [version]
    try:
        if move_live:
            registry.retag(repo, digest, release.LIVE_TAG)
            console.print(f"  [green]✓[/] live → {version}")
        if revision:
            tags.append(f"git-{revision[:12]}")
            registry.retag(repo, digest, tags[-1])
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"stopped while moving the tags to {remote}: see 'mlship releases' for where live points"
        ) from None
    return Published(digest=digest, tags=[*tags, release.LIVE_TAG] if move_live else tags)


def deploy(
    project_dir: Path | str = ".",
    *,
    registry_host: str | None = None,
    base_image: str | None = None,
    force: bool = False,
    reason: str | None = None,
    allow_dirty: bool = False,
    move_live: bool = True,
) -> DeployResult:
    """Run every stage; raise at the first failure with nothing pushed. Without `move_live` the release is
    pushed and tagged but `live` stays where it is (for a canary)."""
    from mlship.adapters.registry import Registry
    from mlship.build.assemble import build_project

    if force and not reason:
        raise UsageError(
            "--force needs --reason TEXT: the reason is recorded on the release",
            hint="e.g. --force --reason 'hotfix: live model rejects new card type'",
        )
    project = load_project(project_dir)
    host = registry_host or project.config.image.registry
    if not host:
        raise UsageError(
            "no registry to push to", hint="set image.registry in mlship.yaml or pass --registry HOST"
        )
    repo = project.config.name
    git = git_state(project.root)
    if git.dirty and not allow_dirty:
        raise UsageError(
            f"{project.root} has uncommitted changes: a release must match a commit",
            hint="commit them, or pass --allow-dirty",
        )
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 2)
        clock = now

    current = "the start"

    def stage(name: str) -> None:
        nonlocal current
        current = name
        _stage(name)

    try:
        with deploy_lock(project):
            stage("1/5 release gate")
            gate = _gate(project)
            lap("gate")

            stage("2/5 against the live release")
            registry = Registry(host)
            tags = registry.tags(repo)
            previous_live, comparisons = _against_live(project, registry, repo, tags, gate, force, reason)
            version = release.next_version(tags)
            lap("against_live")

            stage(f"3/5 build {repo}:{version}")
            created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            labels = release.release_labels(
                version,
                git.revision,
                created,
                measured(gate.metrics),
                gate.data_sha256,
                reason if force else None,
            )
            built = build_project(
                project.root,
                base_image=base_image,
                version=version,
                revision=git.revision,
                extra_labels=labels,
            )
            lap("build")

            stage("4/5 verify the image over HTTP")
            verified = verify_image(project, built.image_ref, gate)
            stamped = _stamp(
                built.image_id,
                f"{repo}:{version}",
                {
                    release.LATENCY_P50_LABEL: f"{verified.p50_ms:.2f}",
                    release.LATENCY_P99_LABEL: f"{verified.p99_ms:.2f}",
                },
            )
            lap("verify")

            stage(f"5/5 push to {host}/{repo}")
            published = publish(registry, repo, version, stamped, git.revision, move_live)
            lap("push")
    except KeyboardInterrupt as interrupt:
        if interrupt.args:  # publish() said how far it got
            raise
        raise KeyboardInterrupt(
            f"stopped during {current}: nothing was pushed and live was not moved"
        ) from None

    return DeployResult(
        repository=f"{host}/{repo}",
        version=version,
        previous_live=previous_live,
        digest=published.digest,
        tags=published.tags,
        image_id=stamped,
        metrics=gate.metrics,
        against_live=comparisons,
        verify=verified,
        forced_reason=reason if force else None,
        seconds=seconds,
    )
