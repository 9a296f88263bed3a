"""The rendered Deployments on a real engine, and the HTTPRoute's split through a real proxy.

One project (the `mlship init` template) is built twice, as v1 and v2 (the second build reuses every layer
but the last ones), pushed to a docker-registry of the test's own; `mlship manifests` + `mlship canary v2
--weight 5` render the tree. Then:
- `podman kube play` runs the rendered Deployment of each version (images pulled by digest from that
  registry). Podman 4.3 neither runs the probes without systemd nor has curl in the image for them, so the
  test runs each probe the rendered YAML declares, as the kubelet would, against the pod. Two changes are
  made to the copy it plays: one replica, and a loopback hostPort (podman 4.3 publishes every containerPort
  on 0.0.0.0 of the host, and both versions listen on the same port).
- Debian haproxy, configured from the rendered HTTPRoute (the header rules → ACLs, the weighted
  backendRefs → server weights), takes 2,000 requests; X-Model-Version says who answered.
- `podman kube down` leaves no pod, container or volume behind.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mlship.adapters import engine as image
from mlship.adapters.registry import Registry
from mlship.build.assemble import build_project
from mlship.ops.k8s.rollout import canary, manifests, target
from tests.integration.conftest import unavailable
from tests.integration.k8s_support import OwnRegistry, free_port, gate_labels

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = "k8s-pods"
VERSIONS = ("v1", "v2")


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check, timeout=300)


class Rollout:
    def __init__(self, project: Path, tree: Path, registry: OwnRegistry) -> None:
        self.project, self.tree, self.registry = project, tree, registry
        self.ports: dict[str, int] = {}
        self.plays: dict[str, Path] = {}


@pytest.fixture(scope="module")
def rollout(
    base_image: str, tmp_path_factory: pytest.TempPathFactory, init_project: Callable[[str, Path], Path]
) -> Iterator[Rollout]:
    if shutil.which("podman") is None:
        unavailable("podman is not installed; run `sudo scripts/containers.sh up`")
    work = tmp_path_factory.mktemp("k8s-pods")
    registry = OwnRegistry(work)
    project = init_project(REPO, work / REPO)
    local = [f"localhost/{REPO}-test:{v}" for v in VERSIONS]
    pushed = [f"{registry.host}/{REPO}:{v}" for v in VERSIONS]
    try:
        for version, ref, remote in zip(VERSIONS, local, pushed, strict=True):
            build_project(
                project, tag=ref, base_image=base_image, version=version, extra_labels=gate_labels(version)
            )
            podman("tag", ref, remote)
            podman("push", "-q", "--tls-verify=false", remote)
        with Registry(registry.host) as client:
            client.retag(REPO, "v1", "live")
        where = target(project, registry.host, None)
        manifests(where)
        canary(where, "v2", 5)
        yield Rollout(project, where.directory, registry)
    finally:
        for ref in [*local, *pushed]:
            image.remove(ref)
        registry.stop()


def deployment(tree: Path, version: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((tree / "base" / f"deployment-{version}.yaml").read_text())
    return document


def container_of(document: dict[str, Any]) -> dict[str, Any]:
    (container,) = document["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


@pytest.fixture(scope="module")
def pods(rollout: Rollout, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rollout]:
    work = tmp_path_factory.mktemp("kube-play")
    try:
        for version in VERSIONS:
            document = deployment(rollout.tree, version)
            document["spec"]["replicas"] = 1
            port = free_port()
            for entry in container_of(document)["ports"]:
                entry.update({"hostIP": "127.0.0.1", "hostPort": port})
            play = work / f"play-{version}.yaml"
            play.write_text(yaml.safe_dump(document, sort_keys=False))
            done = podman("kube", "play", "--tls-verify=false", str(play), check=False)
            assert done.returncode == 0, done.stderr[-2000:]
            rollout.ports[version], rollout.plays[version] = port, play
        yield rollout
    finally:
        for version, play in rollout.plays.items():
            podman("kube", "down", str(play), check=False)
            podman("rmi", "--force", container_of(deployment(rollout.tree, version))["image"], check=False)


def probe_ok(port: int, probe: dict[str, Any], timeout: float) -> bool:
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}{probe['httpGet']['path']}", timeout=timeout)
    except httpx.HTTPError:
        return False
    return 200 <= answer.status_code < 400


def test_the_rendered_pods_get_ready_by_their_probes_and_stay_locked_down(pods: Rollout) -> None:
    for version in VERSIONS:
        spec = container_of(deployment(pods.tree, version))
        port = pods.ports[version]
        assert spec["startupProbe"]["httpGet"]["port"] == "http" == spec["ports"][0]["name"]
        startup = spec["startupProbe"]
        deadline = time.monotonic() + startup["periodSeconds"] * startup["failureThreshold"]
        while not probe_ok(port, startup, startup["timeoutSeconds"]):
            assert time.monotonic() < deadline, f"{version}: the startup probe never passed"
            time.sleep(startup["periodSeconds"])
        assert probe_ok(port, spec["readinessProbe"], spec["readinessProbe"]["timeoutSeconds"])
        assert probe_ok(port, spec["livenessProbe"], spec["livenessProbe"]["timeoutSeconds"])
        ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5)
        assert ready.headers["x-model-version"] == version  # the release version, not "dev"

        name = f"{REPO}-{version}-pod-0-{spec['name']}"
        facts = json.loads(podman("inspect", name).stdout)[0]
        assert facts["HostConfig"]["ReadonlyRootfs"] is True
        assert facts["Config"]["User"].split(":")[0] == "10001"
        assert len(facts["HostConfig"]["CapDrop"]) >= 14 and not facts["HostConfig"]["CapAdd"]
        assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
        written = podman("exec", name, "touch", "/app/written", check=False)
        assert written.returncode != 0 and "Read-only file system" in written.stderr
        assert podman("exec", name, "touch", "/tmp/written", check=False).returncode == 0  # the emptyDir
        image_ref = podman("inspect", "--format", "{{.ImageName}}", name).stdout.strip()
        assert "@sha256:" in image_ref, image_ref  # pulled by digest


def haproxy_config(route: dict[str, Any], ports: dict[str, int], listen: int) -> str:
    """The HTTPRoute as haproxy sees it: header rules → ACLs, the weighted rule → one weighted backend."""
    servers = {f"{REPO}-{version}": port for version, port in ports.items()}
    lines = [
        "global\n  maxconn 512\n",
        "defaults\n  mode http\n  option http-server-close\n  timeout connect 2s\n  timeout client 30s\n"
        "  timeout server 30s\n",
        f"frontend route\n  bind 127.0.0.1:{listen}",
    ]
    backends = []
    for number, rule in enumerate(route["spec"]["rules"]):
        refs = "".join(
            f"  server {ref['name']} 127.0.0.1:{servers[ref['name']]} weight {ref['weight']}\n"
            for ref in rule["backendRefs"]
        )
        headers = [h for match in rule["matches"] for h in match.get("headers", [])]
        if headers:
            condition = " ".join(f"{{ req.hdr({h['name']}) -m str {h['value']} }}" for h in headers)
            lines.append(f"  use_backend rule{number} if {condition}")
        else:
            lines.append(f"  default_backend rule{number}")
        backends.append(f"backend rule{number}\n  balance roundrobin\n{refs}")
    return "\n".join(lines) + "\n\n" + "\n".join(backends)


@pytest.fixture
def proxy(pods: Rollout, tmp_path: Path) -> Iterator[str]:
    if shutil.which("haproxy") is None:
        unavailable("haproxy is not installed; run `sudo scripts/ops-tools.sh`")
    route = yaml.safe_load((pods.tree / "gateway-api" / "httproute.yaml").read_text())
    listen = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config(route, pods.ports, listen))
    check = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    process = subprocess.Popen(
        ["haproxy", "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{listen}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{url}/health/live", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "haproxy did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_haproxy_from_the_route_splits_95_5_and_the_header_pins_v2(pods: Rollout, proxy: str) -> None:
    import pandas as pd

    row = json.loads(
        pd.read_csv(pods.project / "data" / "test.csv")
        .drop(columns=["label"])
        .head(1)
        .to_json(orient="records")
    )
    answered: Counter[str] = Counter()
    pinned: Counter[str] = Counter()
    with httpx.Client(base_url=proxy, timeout=30) as client:
        for _ in range(2000):
            answer = client.post("/predict", json=row)
            assert answer.status_code == 200, answer.text
            answered[answer.headers["x-model-version"]] += 1
        for _ in range(200):
            answer = client.post("/predict", json=row, headers={"x-model-version": "v2"})
            assert answer.status_code == 200, answer.text
            pinned[answer.headers["x-model-version"]] += 1
    share = answered["v2"] / 2000
    print(f"\nv2 answered {answered['v2']} of 2000 ({share:.2%}); pinned: {dict(pinned)}")
    assert set(answered) == {"v1", "v2"}
    assert abs(share - 0.05) <= 0.015
    assert pinned == Counter({"v2": 200})
    for version in VERSIONS:  # the request log says the release version too, never "dev"
        logged = podman("logs", f"{REPO}-{version}-pod-0-model")
        lines = (logged.stdout + logged.stderr).splitlines()
        said = [json.loads(line).get("model_version") for line in lines if line.startswith("{")]
        assert said.count(version) >= answered[version], lines[-5:]
        assert set(said) - {None} == {version}


def test_kube_down_leaves_nothing_behind(pods: Rollout) -> None:
    before_volumes = set(podman("volume", "ls", "--quiet").stdout.split())
    for play in pods.plays.values():
        podman("kube", "down", str(play))
    containers = podman("ps", "-a", "--format", "{{.Names}}").stdout.split()
    pod_names = podman("pod", "ps", "--format", "{{.Name}}").stdout.split()
    assert not [name for name in containers if name.startswith(f"{REPO}-")]
    assert not [name for name in pod_names if name.startswith(f"{REPO}-")]
    assert set(podman("volume", "ls", "--quiet").stdout.split()) <= before_volumes
