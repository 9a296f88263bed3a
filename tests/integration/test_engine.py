"""mlship.adapters.engine and mlship.adapters.registry on the real engine (podman) and registry."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlship.adapters import engine as image
from mlship.adapters.registry import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Registry
from mlship.errors import BuildFailed, RegistryError

from .conftest import unavailable

pytestmark = pytest.mark.integration

LABELS = {"org.opencontainers.image.version": "v-test", "io.mlship.metrics": '{"f1": 0.93}'}
SERVER = """\
FROM {base}
RUN mkdir -p /srv/health && echo ok > /srv/health/ready && echo {marker} > /srv/marker
WORKDIR /srv
EXPOSE 8080
CMD ["python3", "-m", "http.server", "8080"]
"""


def _build(
    tmp_path: Path, base: str, tag: str, marker: str, labels: dict[str, str] | None = None
) -> image.BuiltImage:
    context = tmp_path / f"context-{marker}"
    context.mkdir()
    (context / "Dockerfile").write_text(SERVER.format(base=base, marker=marker))
    return image.build(context, tag, labels=labels)


@pytest.fixture(scope="module")
def served(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[image.BuiltImage]:
    """A tiny HTTP server image built FROM the local base image."""
    tag = f"localhost/mlship-test-served:{uuid.uuid4().hex[:8]}"
    lines: list[str] = []
    context = tmp_path_factory.mktemp("served")
    (context / "Dockerfile").write_text(SERVER.format(base=base_image, marker="served"))
    built = image.build(context, tag, labels=LABELS, on_log=lines.append)
    assert any(image.parse_step(line) for line in lines), lines
    yield built
    image.remove(tag)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_engine_is_found_through_docker_host(engine: image.EngineInfo) -> None:
    assert engine.source == "DOCKER_HOST"
    assert engine.version and engine.api_version
    assert image.connect().ping()


def test_build_describes_the_image_and_carries_labels(served: image.BuiltImage) -> None:
    assert served.id.startswith("sha256:")
    assert served.size_bytes > 50_000_000  # the base image alone is ~150 MB
    assert served.layers >= 2 and served.steps >= 5
    assert image.exists(served.ref)
    labels = image.image_labels(served.ref)
    assert {key: labels.get(key) for key in LABELS} == LABELS


def test_run_answers_over_http_and_is_removed(served: image.BuiltImage) -> None:
    import httpx

    with image.run(served.ref) as container:
        assert container.url is not None and container.url.startswith("http://127.0.0.1:")
        assert image.wait_ready(container, timeout=30) < 30
        response = httpx.get(f"{container.url}/health/ready")
        assert (response.status_code, response.text) == (200, "ok\n")
        assert "GET /health/ready" in container.logs()
        container_id = container.id
    remaining = image.connect().containers.list(all=True, filters={"id": container_id})
    assert remaining == []


def test_run_with_env_read_only_and_no_network(served: image.BuiltImage) -> None:
    with image.run(served.ref, env={"MLSHIP_X": "42"}, read_only=True, network_disabled=True) as container:
        assert container.url is None
        assert (
            container.exec(["python3", "-c", "import os; print(os.environ['MLSHIP_X'])"]).output.strip()
            == "42"
        )
        write = container.exec(["python3", "-c", "open('/srv/new', 'w')"])
        assert write.exit_code != 0 and "Read-only file system" in write.output
        net = container.exec(
            ["python3", "-c", "import socket; socket.create_connection(('10.88.0.1', 80), 2)"]
        )
        assert net.exit_code != 0


def test_sigterm_stops_the_server_promptly(served: image.BuiltImage) -> None:
    with image.run(served.ref) as container:
        image.wait_ready(container, timeout=30)
        started = time.monotonic()
        container.stop(timeout=10)
        assert time.monotonic() - started < 5, "init=True forwards SIGTERM to the server"
        assert container.status() == "exited"


def test_wait_ready_reports_a_crashing_container(served: image.BuiltImage) -> None:
    crash = ["python3", "-c", "import sys; print('model file missing', flush=True); sys.exit(4)"]
    with image.run(served.ref, command=crash) as container, pytest.raises(BuildFailed) as caught:
        image.wait_ready(container, timeout=30)
    assert "exited with code 4" in caught.value.message
    assert "model file missing" in (caught.value.hint or "")


def test_failed_step_is_named_with_its_log(base_image: str, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image}\nRUN echo preparing\nRUN echo boom-output-{uuid.uuid4().hex[:6]} && exit 3\n"
    )
    with pytest.raises(image.BuildStepFailed) as caught:
        image.build(tmp_path, f"localhost/mlship-test-broken:{uuid.uuid4().hex[:8]}")
    error = caught.value
    assert error.step is not None and error.step.startswith("RUN echo boom-output")
    assert "step 3/3" in error.message
    assert any(line.startswith("boom-output") for line in error.log_tail)
    assert "preparing" not in error.log_tail


def test_layers_list_every_file(served: image.BuiltImage) -> None:
    files = list(image.save_layers(served.ref, with_content=True))
    layers = sorted({entry.layer for entry in files})
    assert layers == list(range(served.layers))
    marker = [entry for entry in files if entry.path == "srv/marker"]
    assert len(marker) == 1 and marker[0].content == b"served\n" and marker[0].layer == layers[-1]
    assert any(entry.path.startswith("usr/bin/python3") and entry.layer == 0 for entry in files)


def test_push_then_read_and_move_tags_in_the_registry(
    served: image.BuiltImage, base_image: str, registry_url: str, unique_repo: str, tmp_path: Path
) -> None:
    v1_ref = f"{registry_url}/{unique_repo}:v1"
    image.tag(served.ref, v1_ref)
    try:
        v1 = image.push(v1_ref)
    finally:
        image.remove(v1_ref)
    assert v1.startswith("sha256:")

    v2_labels = {**LABELS, "org.opencontainers.image.version": "v2"}
    v2_ref = f"{registry_url}/{unique_repo}:v2"
    _build(tmp_path, base_image, v2_ref, marker="second", labels=v2_labels)
    try:
        v2 = image.push(v2_ref)
    finally:
        image.remove(v2_ref)
    assert v2 != v1

    with Registry(registry_url) as registry:
        assert sorted(registry.tags(unique_repo)) == ["v1", "v2"]
        assert registry.manifest_digest(unique_repo, "v1") == v1
        assert registry.manifest_digest(unique_repo, "v2") == v2
        assert registry.manifest_digest(unique_repo, "v3") is None
        labels = registry.labels(unique_repo, "v1")
        assert {key: labels.get(key) for key in LABELS} == LABELS
        assert registry.labels(unique_repo, "v2")["org.opencontainers.image.version"] == "v2"

        assert registry.retag(unique_repo, "v2", "live") == v2
        assert registry.manifest_digest(unique_repo, "live") == v2
        assert registry.retag(unique_repo, "v1", "live") == v1  # roll back without pulling
        assert registry.manifest_digest(unique_repo, "live") == v1
        assert sorted(registry.tags(unique_repo)) == ["live", "v1", "v2"]

    live_ref = f"{registry_url}/{unique_repo}:live"
    try:
        assert image.pull(live_ref) == served.id  # pulling live gives v1's image
    finally:
        image.remove(live_ref)


def test_push_to_a_closed_port_raises_registry_error(served: image.BuiltImage) -> None:
    port = _closed_port()
    ref = f"127.0.0.1:{port}/mlship-test/closed:v1"
    image.tag(served.ref, ref)
    try:
        with pytest.raises(RegistryError) as caught:
            image.push(ref)
    finally:
        image.remove(ref)
    assert f"127.0.0.1:{port}" in caught.value.message
    assert caught.value.hint
    with pytest.raises(RegistryError, match=f"127.0.0.1:{port} is unreachable"):
        Registry(f"127.0.0.1:{port}", timeout=3).tags("mlship-test/closed")


def test_registry_lists_nothing_for_an_unknown_repo(registry_url: str) -> None:
    with Registry(registry_url) as registry:
        assert registry.tags(f"mlship-test/never-{uuid.uuid4().hex[:8]}") == []


def test_labels_and_retag_across_manifest_formats(
    served: image.BuiltImage, registry_url: str, unique_repo: str
) -> None:
    """Docker v2, OCI manifest, OCI index and Docker manifest list — what Docker, BuildKit and podman push."""
    if not (shutil.which("skopeo") and shutil.which("podman")):
        unavailable("skopeo and podman CLIs are needed to write OCI manifests and indexes")
    ref = f"{registry_url}/{unique_repo}"
    image.tag(served.ref, f"{ref}:docker")
    try:
        image.push(f"{ref}:docker")
    finally:
        image.remove(f"{ref}:docker")
    index_name = f"localhost/mlship-test-index:{uuid.uuid4().hex[:8]}"

    def cli(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, timeout=120)

    cli("skopeo", "copy", "--format", "oci", f"docker://{ref}:docker", f"docker://{ref}:oci")
    cli("podman", "manifest", "create", index_name)
    try:
        cli("podman", "manifest", "add", index_name, f"docker://{ref}:oci")
        cli("podman", "manifest", "push", "--all", "--format", "oci", index_name, f"docker://{ref}:index")
        cli("podman", "manifest", "push", "--all", "--format", "v2s2", index_name, f"docker://{ref}:list")
    finally:
        subprocess.run(["podman", "manifest", "rm", index_name], capture_output=True)

    expected = {"docker": DOCKER_MANIFEST, "oci": OCI_MANIFEST, "index": OCI_INDEX, "list": DOCKER_LIST}
    with Registry(registry_url) as registry:
        for tag, media_type in expected.items():
            assert registry.manifest(unique_repo, tag).media_type == media_type, tag
            labels = registry.labels(unique_repo, tag)
            assert {key: labels.get(key) for key in LABELS} == LABELS, tag
        index_digest = registry.manifest_digest(unique_repo, "index")
        assert registry.retag(unique_repo, "index", "live") == index_digest
        assert registry.manifest(unique_repo, "live").media_type == OCI_INDEX
