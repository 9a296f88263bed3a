"""Two deploys of one project never release the same version.

On one machine, `.mlship/deploy.lock` (fcntl) lets one `mlship deploy` run at a time: a second fails at once
with a usage error (exit 2), and a deploy that crashed leaves no stale lock. Across machines, the push stage
reads the new tag back and refuses to move `live` unless the registry holds this deploy's image (the
registry here is the in-memory OCI registry of test_registry.py, spoken to by the real `Registry`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mlship.adapters import engine as image
from mlship.adapters.registry import Registry
from mlship.cli import app
from mlship.errors import ExitCode, RegistryError, UsageError
from mlship.project.config import load_project
from mlship.release import deploy as pipeline
from tests.gate_projects import make_project, solution_with
from tests.unit.test_registry import FakeRegistry, make

REPO = "shipit"


def _deploy_cli(project: Path) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    result = CliRunner().invoke(app, ["deploy", str(project), "--registry", "127.0.0.1:9", "--json"])
    payload: dict[str, Any] = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, payload, time.monotonic() - started


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "p")


# --- one machine: the lock -------------------------------------------------------------------------------


def test_a_second_deploy_fails_at_once_while_one_is_running(project: Path) -> None:
    with pipeline.deploy_lock(load_project(project)):
        code, payload, seconds = _deploy_cli(project)
    assert code == ExitCode.USAGE == 2, payload
    assert payload["kind"] == "UsageError"
    assert payload["error"] == f"another 'mlship deploy' of {project.resolve()} is running"
    assert "two deploys at once would race for the version" in payload["hint"]
    assert seconds < 5, f"took {seconds:.1f} s: the second deploy must not run the gate first"
    assert (project / ".mlship" / "deploy.lock").is_file()


def test_the_lock_is_free_once_a_deploy_ends_even_by_an_error(project: Path) -> None:
    loaded = load_project(project)
    with pytest.raises(RuntimeError), pipeline.deploy_lock(loaded):
        raise RuntimeError("a stage failed")
    with pipeline.deploy_lock(loaded):  # would raise UsageError if the lock were still held
        pass


def test_the_lock_is_per_project(tmp_path: Path) -> None:
    first, second = make_project(tmp_path / "a"), make_project(tmp_path / "b")
    with (
        pipeline.deploy_lock(load_project(first)),
        pipeline.deploy_lock(load_project(second)),
        pytest.raises(UsageError),
        pipeline.deploy_lock(load_project(first)),
    ):
        pass


HOLD_LOCK = """\
import sys, time
from mlship.project.config import load_project
from mlship.release.deploy import deploy_lock
with deploy_lock(load_project(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_killed_deploy_leaves_no_stale_lock(project: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(project)], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        code, payload, _ = _deploy_cli(project)
        assert code == 2 and "is running" in payload["error"], payload
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # a crash: no cleanup code runs
        holder.wait(timeout=10)
    assert (project / ".mlship" / "deploy.lock").is_file()  # the file stays; the lock went with the process
    with pipeline.deploy_lock(load_project(project)):
        pass


def test_two_deploy_processes_at_once_one_fails_fast(project: Path) -> None:
    """Two real `mlship deploy` processes: the second stops with exit 2 while the first is in its gate."""
    (project / "solution.py").write_text(solution_with("time.sleep(20)"), encoding="utf-8")
    command = [sys.executable, "-m", "mlship", "deploy", str(project), "--registry", "127.0.0.1:9"]
    first = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert first.stderr is not None
        seen = ""
        while "1/5 release gate" not in seen:
            line = first.stderr.readline()
            assert line, f"the first deploy ended early: {seen}"
            seen += line
        started = time.monotonic()
        second = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=120)
        seconds = time.monotonic() - started
        assert first.poll() is None, "the first deploy should still be in its gate"
    finally:
        first.kill()
        first.wait(timeout=30)
    assert second.returncode == 2, second.stderr
    assert json.loads(second.stdout)["error"].startswith("another 'mlship deploy' of")
    assert "Traceback" not in second.stderr
    assert seconds < 30, f"the second deploy took {seconds:.1f} s to give up"


# --- across machines: read the pushed tag back -----------------------------------------------------------


class Engine:
    """Stands in for the engine's tag and push: a push stores a manifest of our own in the fake registry,
    and `after_push` lets a test act as another machine at the worst moment."""

    def __init__(self, fake: FakeRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fake = fake
        self.calls: list[str] = []
        self.after_push: Any = None
        self.pushed: dict[str, str] = {}
        monkeypatch.setattr(image, "tag", self.tag)
        monkeypatch.setattr(image, "push", self.push)

    def tag(self, ref: str, new_ref: str) -> None:
        self.calls.append(f"tag {ref} {new_ref}")

    def push(self, ref: str) -> str:
        repository, tag = image.split_ref(ref)
        repo = repository.split("/", 1)[1]
        self.calls.append(f"push {ref}")
        digest = self.fake.push_image(repo, tag, {"who": "this deploy"})
        self.pushed[tag] = digest
        if self.after_push is not None:
            self.after_push()
        return digest


def _digests(registry: Registry) -> dict[str, str | None]:
    return {tag: registry.manifest_digest(REPO, tag) for tag in registry.tags(REPO)}


@pytest.fixture
def released() -> tuple[FakeRegistry, Registry, str]:
    """A repository where v1 is live and tagged with its commit."""
    fake = FakeRegistry()
    v1 = fake.push_image(REPO, "v1", {"who": "v1"})
    fake.push_image(REPO, "live", {"who": "v1"})
    fake.push_image(REPO, "git-aaaaaaaaaaaa", {"who": "v1"})
    return fake, make(fake, host="127.0.0.1:5000"), v1


def test_publish_pushes_the_version_then_moves_live_and_the_commit_tag_to_its_digest(
    released: tuple[FakeRegistry, Registry, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, registry, v1 = released
    engine = Engine(fake, monkeypatch)
    published = pipeline.publish(registry, REPO, "v2", "sha256:local", "b" * 40)
    ours = engine.pushed["v2"]
    assert published.digest == ours and ours != v1
    assert published.tags == ["v2", "git-bbbbbbbbbbbb", "live"]
    assert _digests(registry) == {
        "v1": v1,
        "v2": ours,
        "live": ours,
        "git-aaaaaaaaaaaa": v1,
        "git-bbbbbbbbbbbb": ours,
    }
    assert engine.calls == ["tag sha256:local 127.0.0.1:5000/shipit:v2", "push 127.0.0.1:5000/shipit:v2"]


def test_publish_for_a_canary_pushes_and_tags_the_version_but_leaves_live(
    released: tuple[FakeRegistry, Registry, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, registry, v1 = released
    engine = Engine(fake, monkeypatch)
    published = pipeline.publish(registry, REPO, "v2", "sha256:local", "b" * 40, move_live=False)
    ours = engine.pushed["v2"]
    assert published.tags == ["v2", "git-bbbbbbbbbbbb"]
    assert _digests(registry) == {
        "v1": v1,
        "v2": ours,
        "live": v1,
        "git-aaaaaaaaaaaa": v1,
        "git-bbbbbbbbbbbb": ours,
    }


def test_another_machine_taking_the_same_version_is_refused_and_live_stays(
    released: tuple[FakeRegistry, Registry, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, registry, v1 = released
    engine = Engine(fake, monkeypatch)
    before = _digests(registry)
    theirs: list[str] = []
    engine.after_push = lambda: theirs.append(fake.push_image(REPO, "v2", {"who": "the other machine"}))

    with pytest.raises(RegistryError) as caught:
        pipeline.publish(registry, REPO, "v2", "sha256:local", "a" * 40)

    assert caught.value.exit_code == ExitCode.REGISTRY_ERROR == 8
    message = caught.value.message
    assert f"127.0.0.1:5000/shipit:v2 holds {theirs[0]}" in message
    assert f"this deploy pushed {engine.pushed['v2']}" in message
    assert "another deploy took v2 at the same time; live was not moved" in message
    after = _digests(registry)
    assert after["live"] == before["live"] == v1
    assert after["git-aaaaaaaaaaaa"] == before["git-aaaaaaaaaaaa"] == v1
    assert after["v2"] == theirs[0]


def test_a_version_that_appeared_before_the_push_is_not_pushed(
    released: tuple[FakeRegistry, Registry, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, registry, _v1 = released
    engine = Engine(fake, monkeypatch)
    fake.push_image(REPO, "v2", {"who": "the other machine"})
    before = _digests(registry)
    with pytest.raises(RegistryError, match="shipit:v2 appeared while this deploy ran; nothing was pushed"):
        pipeline.publish(registry, REPO, "v2", "sha256:local", None)
    assert engine.calls == []
    assert _digests(registry) == before


def test_live_points_at_our_digest_even_if_the_tag_is_replaced_after_the_check(
    released: tuple[FakeRegistry, Registry, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tags are moved by digest: a replacement of `v2` after the read-back cannot slip into `live`."""
    fake, registry, _v1 = released
    engine = Engine(fake, monkeypatch)
    real_retag = registry.retag

    def replaced_first(repo: str, src_ref: str, new_tag: str) -> str:
        fake.push_image(REPO, "v2", {"who": "the other machine"})
        return real_retag(repo, src_ref, new_tag)

    monkeypatch.setattr(registry, "retag", replaced_first)
    published = pipeline.publish(registry, REPO, "v2", "sha256:local", None)
    assert registry.manifest_digest(REPO, "live") == published.digest == engine.pushed["v2"]


def test_an_interrupted_push_leaves_live_and_every_existing_tag(
    released: tuple[FakeRegistry, Registry, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, registry, _v1 = released
    engine = Engine(fake, monkeypatch)
    before = _digests(registry)

    def interrupted() -> None:
        raise KeyboardInterrupt

    engine.after_push = interrupted  # Ctrl-C right after the version's manifest reached the registry
    with pytest.raises(KeyboardInterrupt) as caught:
        pipeline.publish(registry, REPO, "v2", "sha256:local", "a" * 40)
    assert "stopped while pushing 127.0.0.1:5000/shipit:v2: live was not moved" in str(caught.value)
    after = _digests(registry)
    assert {tag: after[tag] for tag in before} == before
    assert set(after) - set(before) == {"v2"}
