"""Helpers of the Kubernetes tests: a docker-registry of their own on a free loopback port, and small images
carrying a release's labels pushed into it with podman."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

from mlship.adapters.registry import Registry
from mlship.errors import MlshipError
from mlship.release import versions as release
from tests.integration.conftest import unavailable


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class OwnRegistry:
    """`docker-registry serve` on 127.0.0.1:<free port>, storage in a temporary folder, deletes enabled."""

    def __init__(self, folder: Path) -> None:
        if shutil.which("docker-registry") is None:
            unavailable("docker-registry is not installed; run `sudo scripts/containers.sh up`")
        self.host = f"127.0.0.1:{free_port()}"
        config = folder / "registry.yml"
        config.write_text(
            "version: 0.1\nlog: {level: warn}\n"
            f"storage:\n  filesystem: {{rootdirectory: {folder / 'data'}}}\n  delete: {{enabled: true}}\n"
            f"http: {{addr: {self.host}}}\n"
        )
        self.log = (folder / "registry.log").open("ab")
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=self.log, stderr=self.log
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with Registry(self.host, timeout=1) as client:
                    client.ping()
                return
            except MlshipError:
                if time.monotonic() > deadline:
                    self.stop()
                    unavailable(
                        f"docker-registry on {self.host} did not start; see {folder / 'registry.log'}"
                    )
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()


def gate_labels(version: str) -> dict[str, str]:
    """The labels `mlship deploy` puts on a release that passed the gate."""
    return release.release_labels(version, "0" * 40, "2026-12-04T00:00:00Z", {"f1": 0.9}, "ab" * 32, None)


def push_small_release(
    registry: str, repo: str, version: str, base_image: str, labels: dict[str, str], work: Path
) -> None:
    """A tiny image (the base image plus labels) pushed as `repo:version` with podman."""
    context = work / f"ctx-{version}"
    context.mkdir(exist_ok=True)
    lines = [f"FROM {base_image}"] + [f"LABEL {json.dumps(k)}={json.dumps(v)}" for k, v in labels.items()]
    lines.append(f'LABEL "test.release"="{version}"')
    (context / "Containerfile").write_text("\n".join(lines) + "\n")
    ref = f"{registry}/{repo}:{version}"
    subprocess.run(["podman", "build", "-q", "-t", ref, str(context)], check=True, capture_output=True)
    try:
        subprocess.run(["podman", "push", "-q", "--tls-verify=false", ref], check=True, capture_output=True)
    finally:
        subprocess.run(["podman", "rmi", "-f", ref], check=False, capture_output=True)
