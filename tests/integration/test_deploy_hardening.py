"""The release under faults, on the real engine and the loopback registry.

- Ctrl-C (SIGINT to the process group of a real `python -m mlship deploy`) at build, at verify and at push:
  exit 130 with one "interrupted" line and no traceback, `live` and every existing tag byte-identical, no
  container of the run left, and a rerun releases the next version (while a second deploy started next to
  it stops at once with exit 2).
- A full disk during the build (a small tmpfs as TMPDIR, where the build context is staged and packed):
  exit 7, "no space left on device" named, a hint to free space; the registry unchanged.
- The engine going away mid-build (a podman API service of the test's own, killed): exit 6.

One deploy makes v1 for the whole module; the project's repository is unique to the run and deleted after.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mlship.adapters import engine as image
from mlship.adapters.registry import Registry
from mlship.errors import MlshipError
from tests.integration.conftest import unavailable

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STAGE_LINES = {"build": "3/5 build", "verify": "4/5 verify", "push": "5/5 push"}


@dataclass
class Released:
    """A project whose v1 is live in the registry."""

    project: Path
    repo: str
    host: str
    base_image: str
    v1: dict[str, Any]
    tags_at_v1: dict[str, str | None]


@dataclass
class Run:
    """A `mlship` process whose stderr is read line by line as it comes."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _seen: threading.Condition = field(default_factory=threading.Condition)
    _reader: threading.Thread | None = None

    def start_reading(self) -> Run:
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def wait_for(self, text: str, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        with self._seen:
            while not any(text in line for line in self.lines):
                if self.process.poll() is not None and self.process.stderr is not None:
                    self._seen.wait(1)  # the reader may still hold the last lines
                    if not any(text in line for line in self.lines):
                        pytest.fail(f"the process ended before printing {text!r}:\n{self.stderr[-3000:]}")
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"no {text!r} within {timeout:g} s:\n{self.stderr[-3000:]}")
                self._seen.wait(1)

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        assert self.process.stdout is not None
        stdout = self.process.stdout.read()
        code = self.process.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=30)
        return code, stdout

    @property
    def stderr(self) -> str:
        return "".join(self.lines)


def mlship(*args: str, env: dict[str, str] | None = None) -> Run:
    process = subprocess.Popen(
        [sys.executable, "-m", "mlship", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a command started from a shell
        env={**os.environ, **(env or {})},
    )
    return Run(process).start_reading()


def deploy(released: Released, *, env: dict[str, str] | None = None, project: Path | None = None) -> Run:
    return mlship(
        "deploy",
        str(project or released.project),
        "--registry",
        released.host,
        "--base-image",
        released.base_image,
        "--json",
        env=env,
    )


def registry_tags(host: str, repo: str) -> dict[str, str | None]:
    with Registry(host) as registry:
        return {tag: registry.manifest_digest(repo, tag) for tag in registry.tags(repo)}


def one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith(("error:", "interrupted:"))]
    assert len(errors) == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    return errors[0]


def managed_containers(repo: str) -> dict[str, str]:
    """Containers (any state) mlship started from an image of `repo`: id → status."""
    client = image.connect()
    found = {}
    for container in client.containers.list(all=True, filters={"label": "mlship.managed=true"}):
        names = json.dumps([container.attrs.get("Config", {}).get("Image"), container.attrs.get("ImageName")])
        if repo in names:
            found[str(container.id)] = str(container.status)
    return found


@pytest.fixture(scope="module")
def released(
    engine: image.EngineInfo,
    base_image: str,
    registry_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    init_project: Callable[[str, Path], Path],
) -> Iterator[Released]:
    repo = f"mlship-test/hardening-{uuid.uuid4().hex[:10]}"
    project = init_project("hardening", tmp_path_factory.mktemp("hardening") / "hardening")
    config = project / "mlship.yaml"
    config.write_text(re.sub(r"(?m)^name: .*$", f"name: {repo}", config.read_text()))
    state = Released(project, repo, registry_url, base_image, {}, {})
    first = deploy(state)
    code, stdout = first.finish(timeout=1200)
    assert code == 0, first.stderr[-3000:]
    state.v1 = json.loads(stdout)
    state.tags_at_v1 = registry_tags(registry_url, repo)
    assert state.v1["version"] == "v1" and state.tags_at_v1["live"] == state.tags_at_v1["v1"]
    yield state
    with Registry(registry_url) as registry:
        try:
            for digest in set(registry_tags(registry_url, repo).values()) - {None}:
                registry.delete_manifest(repo, str(digest))
        except MlshipError:
            pass  # best effort: the loopback registry may not allow deletes
    for number in range(1, 6):
        for ref in (f"{repo}:v{number}", f"{registry_url}/{repo}:v{number}"):
            with contextlib.suppress(MlshipError):
                image.remove(ref)
    with contextlib.suppress(MlshipError):
        image.remove(f"{repo}:dev")


def assert_release_untouched(released: Released) -> dict[str, str | None]:
    """`live` and every tag that existed at v1 still point at the same digests."""
    now = registry_tags(released.host, released.repo)
    assert {tag: now.get(tag) for tag in released.tags_at_v1} == released.tags_at_v1
    assert now["live"] == released.tags_at_v1["v1"]
    return now


# --- Ctrl-C --------------------------------------------------------------------------------------------


def _wait_for_verify_container(released: Released) -> Callable[[], str]:
    def running() -> str:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            live = [cid for cid, status in managed_containers(released.repo).items() if status == "running"]
            if live:
                return live[0]
            time.sleep(0.2)
        pytest.fail("verify never started a container")

    return running


@pytest.mark.parametrize("stage", ["build", "verify", "push"])
def test_ctrl_c_during_a_stage_leaves_the_release_and_no_container(released: Released, stage: str) -> None:
    run = deploy(released)
    run.wait_for(STAGE_LINES[stage])
    container = _wait_for_verify_container(released)() if stage == "verify" else None
    if stage == "build":
        run.wait_for("step 2/")  # the engine is streaming the build
    os.killpg(run.process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    code, stdout = run.finish()

    assert code == 130, run.stderr[-3000:]
    line = one_error_line(run.stderr)
    assert line.startswith("interrupted: stopped "), line
    assert "live was not moved" in line, line
    assert json.loads(stdout)["exit_code"] == 130
    if stage != "push":
        assert f"during {STAGE_LINES[stage]}" in line and "nothing was pushed" in line, line
    assert_release_untouched(released)
    if container is not None:
        with pytest.raises(Exception, match="(?i)no such container|not found|404"):
            image.connect().containers.get(container)
    assert managed_containers(released.repo) == {}


def test_a_rerun_after_the_interrupts_releases_the_next_version_and_a_twin_stops_at_once(
    released: Released,
) -> None:
    before = registry_tags(released.host, released.repo)
    numbers = [int(tag[1:]) for tag in before if re.fullmatch(r"v\d+", tag)]
    expected = f"v{max(numbers) + 1}"

    rerun = deploy(released)
    rerun.wait_for("1/5 release gate")
    twin = deploy(released)
    twin_code, twin_stdout = twin.finish(timeout=120)
    code, stdout = rerun.finish(timeout=1200)

    assert twin_code == 2, twin.stderr[-3000:]
    assert json.loads(twin_stdout)["error"].startswith("another 'mlship deploy' of")
    assert code == 0, rerun.stderr[-3000:]
    result = json.loads(stdout)
    assert (result["version"], result["previous_live"]) == (expected, "v1")
    after = registry_tags(released.host, released.repo)
    assert after["live"] == after[expected] == result["digest"]
    assert {tag: after[tag] for tag in before if tag != "live"} == {
        tag: digest for tag, digest in before.items() if tag != "live"
    }
    assert managed_containers(released.repo) == {}


# --- a full disk ----------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount tmpfs file systems of a given size (needs root; the mounts are undone afterwards)."""
    if os.geteuid() != 0:
        unavailable("mounting a small tmpfs needs root")
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"disk-{len(mounted)}"
        point.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], check=True)
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=False)


def _copy_project(released: Released, target: Path) -> Path:
    """The released project (its frozen requirements included, so no resolve runs) in another folder."""
    shutil.copytree(released.project, target, ignore=shutil.ignore_patterns(".mlship"))
    shutil.copytree(released.project / ".mlship", target / ".mlship", ignore=shutil.ignore_patterns("*.lock"))
    return target


def _assert_disk_full(code: int, stderr: str, where: str) -> None:
    assert code == 7, stderr[-3000:]
    line = one_error_line(stderr)
    assert line.startswith("error: no space left on device"), line
    assert where in line, line
    assert "docker system prune" in stderr and "TMPDIR" in stderr


def test_a_full_disk_while_staging_the_build_context_is_exit_7(
    released: Released, small_disk: Callable[[str], Path], tmp_path: Path
) -> None:
    full = small_disk("64k")
    project = _copy_project(released, tmp_path / "copy")
    run = mlship("build", str(project), "--base-image", released.base_image, env={"TMPDIR": str(full)})
    code, _ = run.finish()
    _assert_disk_full(code, run.stderr, f"writing {full}/")
    assert list(full.iterdir()) == []  # the partial context was removed


def test_a_full_disk_while_packing_the_context_for_the_engine_fails_the_deploy_with_exit_7(
    released: Released, small_disk: Callable[[str], Path], tmp_path: Path
) -> None:
    """The context (with a 4 MB artefact) fits on a 6 MB disk once, not twice: staging works, packing it
    for the engine does not. The deploy stops at its build stage and the registry is unchanged."""
    full = small_disk("6m")
    project = _copy_project(released, tmp_path / "copy")
    (project / "model" / "weights.bin").write_bytes(os.urandom(4_000_000))
    before = registry_tags(released.host, released.repo)
    run = deploy(released, project=project, env={"TMPDIR": str(full)})
    code, stdout = run.finish(timeout=900)
    _assert_disk_full(code, run.stderr, f"(temporary files go to {full})")
    assert "3/5 build" in run.stderr
    assert json.loads(stdout)["exit_code"] == 7
    assert registry_tags(released.host, released.repo) == before


# --- the engine goes away mid-build -------------------------------------------------------------------------


@pytest.fixture
def own_engine(engine: image.EngineInfo, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A podman API service of this test's own (same storage as the main one), which the test may kill."""
    if shutil.which("podman") is None:
        unavailable("podman is not installed; the engine-gone test starts a podman API service of its own")
    socket_path = tmp_path / "engine.sock"
    log = (tmp_path / "engine.log").open("wb")
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{socket_path}"], stdout=log, stderr=log
    )
    deadline = time.monotonic() + 30
    while not socket_path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if not socket_path.exists():
        service.kill()
        unavailable(f"podman system service did not open {socket_path}; see {tmp_path / 'engine.log'}")
    yield f"unix://{socket_path}", service
    if service.poll() is None:
        service.kill()
    service.wait(timeout=30)
    log.close()


# serial: killing an engine mid-build (a second podman service on the same storage) can fail a build that
# another worker runs at that moment; the serial part of scripts/test runs with nothing beside it
@pytest.mark.serial
def test_the_engine_going_away_mid_build_is_exit_6(
    released: Released, own_engine: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    url, service = own_engine
    project = _copy_project(released, tmp_path / "copy")
    tag = f"{released.repo}:engine-gone"
    run = mlship(
        "build",
        str(project),
        "--base-image",
        released.base_image,
        "--no-cache",
        "--tag",
        tag,
        env={"DOCKER_HOST": url},
    )
    run.wait_for("step 3/")  # a RUN step is executing in the engine
    service.kill()  # the engine crashes
    code, _ = run.finish()

    assert code == 6, run.stderr[-3000:]
    line = one_error_line(run.stderr)
    assert line.startswith(f"error: the container engine at {url} stopped answering while building {tag}"), (
        line
    )
    assert "podman system service" in run.stderr  # the hint says how to start one
    assert not image.exists(tag)
