"""Session fixtures for tests on the real container engine, registry and base image.

Set them up with `scripts/containers.sh up` and `export DOCKER_HOST=unix:///run/podman/podman.sock`.
Without them these fixtures skip, with the reason; with MLSHIP_REQUIRE_INTEGRATION=1 (CI) they fail
instead, so a broken set-up can never pass as "all skipped".
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from mlship.adapters import engine as image
from mlship.adapters.registry import Registry
from mlship.build.assemble import BuildResult, build_project
from mlship.errors import MlshipError
from tests.build_projects import plant_secrets

SETUP_HINT = "run `sudo scripts/containers.sh up` and `export DOCKER_HOST=unix:///run/podman/podman.sock`"
DEFAULT_REGISTRY = "127.0.0.1:5000"
DEFAULT_BASE_IMAGE = "localhost/pybase:bookworm"


def unavailable(reason: str) -> NoReturn:
    """Skip — or fail, when MLSHIP_REQUIRE_INTEGRATION=1 — because a real dependency is missing."""
    if os.environ.get("MLSHIP_REQUIRE_INTEGRATION") == "1":
        pytest.fail(f"{reason} (MLSHIP_REQUIRE_INTEGRATION=1, so this is a failure)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine() -> image.EngineInfo:
    """The engine DOCKER_HOST points at, answering."""
    if not os.environ.get("DOCKER_HOST"):
        unavailable(f"DOCKER_HOST is not set: no container engine for integration tests; {SETUP_HINT}")
    image.forget_engine()
    try:
        return image.engine_info()
    except MlshipError as error:
        unavailable(f"the container engine does not answer: {error.message}; {SETUP_HINT}")


@pytest.fixture(scope="session")
def registry_url() -> str:
    """The loopback registry's host:port ("127.0.0.1:5000", or MLSHIP_TEST_REGISTRY), answering."""
    host = os.environ.get("MLSHIP_TEST_REGISTRY", DEFAULT_REGISTRY)
    try:
        with Registry(host, timeout=5) as registry:
            registry.ping()
    except MlshipError as error:
        unavailable(f"the test registry does not answer: {error.message}; {SETUP_HINT}")
    return host


@pytest.fixture(scope="session")
def base_image(engine: image.EngineInfo) -> str:
    """The local Python base image tests build from (no public registry is reachable)."""
    ref = os.environ.get("MLSHIP_TEST_BASE_IMAGE", DEFAULT_BASE_IMAGE)
    if not image.exists(ref):
        unavailable(f"the base image {ref} is missing from the engine; {SETUP_HINT}")
    return ref


@pytest.fixture
def unique_repo(registry_url: str) -> Iterator[str]:
    """A repository name no other test uses; its manifests are deleted from the registry afterwards."""
    repo = f"mlship-test/{uuid.uuid4().hex[:12]}"
    yield repo
    with Registry(registry_url) as registry:
        try:
            digests = {registry.manifest_digest(repo, tag) for tag in registry.tags(repo)}
            for digest in digests - {None}:
                registry.delete_manifest(repo, str(digest))
        except MlshipError:
            pass  # cleanup is best effort; a stopped registry was the test's business


class PrivateRegistry:
    """A registry of the test's own on 127.0.0.1:5001 (marked insecure by scripts/containers.sh), which the
    test may stop and start again; its storage survives a restart, like a real registry's."""

    host = "127.0.0.1:5001"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.config = folder / "registry.yml"
        self.config.write_text(
            "version: 0.1\nlog: {level: warn}\n"
            f"storage:\n  filesystem: {{rootdirectory: {folder / 'data'}}}\n  delete: {{enabled: true}}\n"
            f"http: {{addr: {self.host}}}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # The port is fixed (podman must know it as insecure): a registry left there by another test run
        # on this machine would answer in place of ours, with its own tags. Refuse that plainly.
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", int(self.host.rsplit(":", 1)[1]))) == 0:
                pytest.fail(f"{self.host} is already taken (another test run's registry?); stop it first")
        log = (self.folder / "registry.log").open("ab")
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(self.config)], stdout=log, stderr=log
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with Registry(self.host, timeout=1) as registry:
                    registry.ping()
                assert self.process.poll() is None, f"our registry exited; see {self.folder / 'registry.log'}"
                return
            except MlshipError:
                time.sleep(0.1)
        unavailable(f"docker-registry on {self.host} did not start; see {self.folder / 'registry.log'}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_registry(engine: image.EngineInfo, tmp_path: Path) -> Iterator[PrivateRegistry]:
    if shutil.which("docker-registry") is None:
        unavailable(f"docker-registry is not installed; {SETUP_HINT}")
    registry = PrivateRegistry(tmp_path)
    registry.start()
    yield registry
    registry.stop()


# --- the `mlship init` template's frozen requirements, resolved once per run ---


@pytest.fixture(scope="session")
def template_lock(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The lock file `mlship build` writes for a fresh `mlship init` project, resolved once per test run.

    pip-compile takes 40-60 s per fresh project; the tests that only need *a* project to build, deploy or
    roll out start from this lock instead (its header's inputs digest matches theirs, so the build reuses it
    exactly as it reuses a committed lock). Resolving itself stays covered: the `built` template project
    (test_build.py), test_install.py, test_example_project.py and scripts/clean-install resolve for real.
    Under pytest-xdist the workers share one resolve through a file lock in the run's common folder.
    """
    from mlship.build.context import runtime_requirements, runtime_source
    from mlship.build.requirements import STATE_DIR, freeze
    from mlship.project.config import load_project
    from mlship.project.scaffold import create_project

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # this run's folder, the same for every worker
    cached = shared / "template-requirements.lock.txt"
    with open(shared / "template-requirements.lock.flock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not cached.is_file():
            root = tmp_path_factory.mktemp("template-lock") / "template"
            create_project("template", root)
            project = load_project(root)
            source = runtime_source() / "requirements.txt"
            runtime = runtime_requirements(project.config.model.format, source, root / STATE_DIR)
            scratch = cached.with_suffix(".tmp")
            scratch.write_text(freeze(project, runtime).lock_path.read_text())
            scratch.replace(cached)
    return cached.read_text()


@pytest.fixture(scope="session")
def init_project(template_lock: str) -> Callable[[str, Path], Path]:
    """`mlship init NAME` into a folder, with the template's lock already frozen (see `template_lock`)."""
    from mlship.build.requirements import LOCK_FILE
    from mlship.project.scaffold import create_project

    def init(name: str, root: Path) -> Path:
        project = create_project(name, root).project
        (project / LOCK_FILE).write_text(template_lock)
        return project

    return init


# --- one built project, shared: the `mlship init` template (test_build.py, test_fallback_image.py) ---

TRICKY_ENV = 'say "hi" to $USER \\o/ `id`'
TRICKY_LABEL = 'costs $5 "each" \\ $(id)'


@pytest.fixture(scope="session")
def template_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `mlship init` template project, with secrets planted and a git remote carrying a token."""
    from mlship.project.scaffold import create_project

    root = tmp_path_factory.mktemp("build") / "fraud-detector"
    create_project("fraud-detector", root)
    config = (root / "mlship.yaml").read_text()
    tricky = json.dumps(TRICKY_ENV)
    config = config.replace(
        "image:\n",
        f"image:\n  env: {{GREETING: {tricky}}}\n"
        f"  labels: {{team: payments, note: {json.dumps(TRICKY_LABEL)}}}\n",
    )
    (root / "mlship.yaml").write_text(config)
    plant_secrets(root)
    git = ["git", "-C", str(root)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run(
        [*git, "remote", "add", "origin", "https://ci:glpat-s3cr3t@git.example.com/acme/fraud.git"]
    )
    subprocess.run([*git, "add", "mlship.yaml", "solution.py"], check=True)
    subprocess.run(
        [*git, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init"], check=True
    )
    return root


@pytest.fixture(scope="session")
def built(template_project: Path, base_image: str) -> Iterator[BuildResult]:
    tag = f"mlship-test-build:{uuid.uuid4().hex[:12]}"
    result = build_project(template_project, tag=tag, base_image=base_image)
    print(f"\ncold build: {result.seconds:.1f} s, image {result.size_bytes / 1e6:.0f} MB")
    yield result
    for ref in (tag, f"{tag}-model2"):  # -model2 exists only when the layer-reuse test ran
        try:
            image.remove(ref)
        except MlshipError:
            if ref == tag:
                raise
