"""mlship.adapters.registry against an in-memory OCI distribution registry behind httpx.MockTransport."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from dataclasses import dataclass, field
from typing import Any

import httpx  # noqa: TID253 - the fakes are httpx transports
import pytest

from mlship.adapters import registry as registry_module
from mlship.adapters.credentials import Credentials
from mlship.adapters.registry import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    ManifestNotFound,
    Registry,
    is_loopback,
)
from mlship.errors import ExitCode, RegistryError

HOST = "registry.example.com"
REALM = "https://auth.example.com/token"
USER, PASSWORD = "ci-bot", "s3cr3t-pa55word"


def _digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


@dataclass
class FakeRegistry:
    """Just enough of the distribution API: tags, manifests, blobs, delete; optional auth."""

    auth: str = "none"  # "none" | "bearer" | "basic"
    delete_tags: bool = False
    page_size: int = 0  # > 0: paginate tags/list with Link headers
    manifests: dict[str, dict[str, tuple[str, bytes]]] = field(
        default_factory=dict
    )  # repo → ref → (type, body)
    blobs: dict[str, bytes] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    tokens_issued: int = 0

    def push_image(
        self, repo: str, tag: str, labels: dict[str, str], media_type: str = DOCKER_MANIFEST
    ) -> str:
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": labels}}).encode()
        self.blobs[_digest(config)] = config
        config_type = (
            "application/vnd.oci.image.config.v1+json"
            if media_type == OCI_MANIFEST
            else "application/vnd.docker.container.image.v1+json"
        )
        manifest = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": config_type, "size": len(config), "digest": _digest(config)},
            "layers": [{"mediaType": "x", "size": 1, "digest": "sha256:" + "0" * 64}],
        }
        return self.put_manifest(repo, tag, media_type, json.dumps(manifest, indent=3).encode())

    def put_manifest(self, repo: str, tag: str, media_type: str, body: bytes) -> str:
        refs = self.manifests.setdefault(repo, {})
        refs[tag] = (media_type, body)
        refs[_digest(body)] = (media_type, body)
        return _digest(body)

    # --- the HTTP side ---

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == "auth.example.com":
            return self._token(request)
        if not self._authorized(request):
            challenge = (
                f'Bearer realm="{REALM}",service="{HOST}"'
                if self.auth == "bearer"
                else f'Basic realm="{HOST}"'
            )
            return httpx.Response(401, headers={"WWW-Authenticate": challenge}, json={"errors": []})
        parts = request.url.path.split("/")
        if request.url.path == "/v2/":
            return httpx.Response(200, json={})
        if parts[-2:] == ["tags", "list"]:
            return self._tags("/".join(parts[2:-2]), request)
        if parts[-2] == "manifests":
            return self._manifest("/".join(parts[2:-2]), parts[-1], request)
        if parts[-2] == "blobs":
            blob = self.blobs.get(parts[-1])
            return httpx.Response(200, content=blob) if blob is not None else httpx.Response(404)
        return httpx.Response(404)

    def _authorized(self, request: httpx.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if self.auth == "none":
            return True
        if self.auth == "bearer":
            return header == "Bearer good-token"
        return header == "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def _token(self, request: httpx.Request) -> httpx.Response:
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return httpx.Response(401, json={"details": "incorrect username or password"})
        self.tokens_issued += 1
        return httpx.Response(200, json={"token": "good-token"})

    def _tags(self, repo: str, request: httpx.Request) -> httpx.Response:
        if repo not in self.manifests:
            return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN", "message": "unknown"}]})
        tags = sorted(ref for ref in self.manifests[repo] if not ref.startswith("sha256:"))
        if not self.page_size:
            return httpx.Response(200, json={"name": repo, "tags": tags})
        last = request.url.params.get("last")
        start = tags.index(last) + 1 if last else 0
        page = tags[start : start + self.page_size]
        headers = {}
        if start + self.page_size < len(tags):
            headers["Link"] = f'</v2/{repo}/tags/list?n={self.page_size}&last={page[-1]}>; rel="next"'
        return httpx.Response(200, json={"name": repo, "tags": page}, headers=headers)

    def _manifest(self, repo: str, ref: str, request: httpx.Request) -> httpx.Response:
        refs = self.manifests.get(repo, {})
        if request.method == "PUT":
            digest = self.put_manifest(repo, ref, request.headers["Content-Type"], request.content)
            return httpx.Response(201, headers={"Docker-Content-Digest": digest})
        if request.method == "DELETE":
            if ref not in refs:
                return httpx.Response(404)
            if not ref.startswith("sha256:") and not self.delete_tags:
                return httpx.Response(400, json={"errors": [{"code": "DIGEST_INVALID"}]})
            if ref.startswith("sha256:"):
                for name in [name for name, (_, body) in refs.items() if _digest(body) == ref]:
                    del refs[name]
            else:
                del refs[ref]
            return httpx.Response(202)
        if ref not in refs:
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]})
        media_type, body = refs[ref]
        headers = {"Content-Type": media_type, "Docker-Content-Digest": _digest(body)}
        return httpx.Response(200, headers=headers, content=b"" if request.method == "HEAD" else body)


def make(fake: FakeRegistry, host: str = HOST, **kwargs: Any) -> Registry:
    return Registry(host, transport=httpx.MockTransport(fake), **kwargs)


# --- addressing ---


@pytest.mark.parametrize(
    ("host", "insecure", "expected"),
    [
        ("127.0.0.1:5000", None, "http://127.0.0.1:5000"),
        ("localhost:5000", None, "http://localhost:5000"),
        ("[::1]:5000", None, "http://[::1]:5000"),
        ("registry.example.com", None, "https://registry.example.com"),
        ("http://registry.lan:5000", None, "http://registry.lan:5000"),
        ("https://127.0.0.1:5000", None, "https://127.0.0.1:5000"),
        ("registry.lan:5000", True, "http://registry.lan:5000"),
        ("docker.io", None, "https://registry-1.docker.io"),
    ],
)
def test_scheme_follows_loopback_or_explicit_choice(host: str, insecure: bool | None, expected: str) -> None:
    assert Registry(host, insecure=insecure).base_url == expected


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1:5000") and is_loopback("localhost") and is_loopback("[::1]:5000")
    assert not is_loopback("10.0.0.5:5000") and not is_loopback("ghcr.io")


def test_docker_hub_official_images_live_under_library() -> None:
    fake = FakeRegistry()
    fake.push_image("library/python", "3.11", {})
    assert make(fake, "docker.io").tags("python") == ["3.11"]
    assert fake.requests[-1].url.host == "registry-1.docker.io"


# --- reading ---


def test_tags_of_a_missing_repository_is_empty() -> None:
    assert make(FakeRegistry()).tags("nothing-here") == []


def test_tags_follow_pagination() -> None:
    fake = FakeRegistry(page_size=2)
    for index in range(5):
        fake.push_image("team/model", f"v{index}", {"i": str(index)})
    assert sorted(make(fake).tags("team/model")) == ["v0", "v1", "v2", "v3", "v4"]
    assert sum(1 for request in fake.requests if "tags/list" in request.url.path) == 3


def test_repo_may_be_given_with_the_host_prefix() -> None:
    fake = FakeRegistry()
    fake.push_image("model", "v1", {})
    assert make(fake).tags(f"{HOST}/model") == ["v1"]


def test_manifest_digest_is_the_stored_digest_or_none() -> None:
    fake = FakeRegistry()
    digest = fake.push_image("model", "v1", {"a": "1"})
    registry = make(fake)
    assert registry.manifest_digest("model", "v1") == digest
    assert registry.manifest_digest("model", "v9") is None
    assert registry.manifest_digest("other", "v1") is None
    head = fake.requests[0]
    assert head.method == "HEAD"
    assert DOCKER_MANIFEST in head.headers["Accept"] and OCI_INDEX in head.headers["Accept"]


@pytest.mark.parametrize("media_type", [DOCKER_MANIFEST, OCI_MANIFEST])
def test_labels_come_from_the_config_blob(media_type: str) -> None:
    fake = FakeRegistry()
    labels = {"org.opencontainers.image.version": "v3", "mlship.metrics": '{"f1": 0.91}'}
    fake.push_image("model", "v3", labels, media_type=media_type)
    assert make(fake).labels("model", "v3") == labels
    assert not any("/blobs/sha256:" + "0" * 64 in str(request.url) for request in fake.requests), "no layer"


def test_labels_of_an_index_pick_this_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRegistry()
    amd = fake.push_image("model", "amd", {"arch": "amd64"}, media_type=OCI_MANIFEST)
    arm = fake.push_image("model", "arm", {"arch": "arm64"}, media_type=OCI_MANIFEST)
    attestation = fake.push_image("model", "att", {"arch": "attestation"}, media_type=OCI_MANIFEST)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": attestation,
                "size": 1,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
            },
            {
                "mediaType": OCI_MANIFEST,
                "digest": arm,
                "size": 1,
                "platform": {"os": "linux", "architecture": "arm64"},
            },
            {
                "mediaType": OCI_MANIFEST,
                "digest": amd,
                "size": 1,
                "platform": {"os": "linux", "architecture": "amd64"},
            },
        ],
    }
    fake.put_manifest("model", "v1", OCI_INDEX, json.dumps(index).encode())
    monkeypatch.setattr(registry_module.platform, "machine", lambda: "x86_64")
    assert make(fake).labels("model", "v1") == {"arch": "amd64"}
    monkeypatch.setattr(registry_module.platform, "machine", lambda: "aarch64")
    assert make(fake).labels("model", "v1") == {"arch": "arm64"}
    monkeypatch.setattr(registry_module.platform, "machine", lambda: "riscv64")
    assert make(fake).labels("model", "v1") == {"arch": "arm64"}, "first image when no platform matches"


def test_labels_of_a_missing_tag_raise_manifest_not_found() -> None:
    fake = FakeRegistry()
    fake.push_image("model", "v1", {})
    with pytest.raises(ManifestNotFound) as caught:
        make(fake).labels("model", "v7")
    assert caught.value.exit_code == ExitCode.REGISTRY_ERROR
    assert f"{HOST}/model:v7" in caught.value.message


def test_a_corrupt_config_blob_is_detected() -> None:
    fake = FakeRegistry()
    fake.push_image("model", "v1", {"a": "1"})
    config_digest = next(iter(fake.blobs))
    fake.blobs[config_digest] = b'{"config": {"Labels": {"a": "forged"}}}'
    with pytest.raises(RegistryError, match="does not match its digest"):
        make(fake).labels("model", "v1")


# --- writing ---


def test_retag_copies_the_manifest_byte_for_byte() -> None:
    fake = FakeRegistry()
    digest = fake.push_image("model", "v2", {"v": "2"}, media_type=OCI_MANIFEST)
    original = fake.manifests["model"]["v2"]
    registry = make(fake)
    assert registry.retag("model", "v2", "live") == digest
    put = next(request for request in fake.requests if request.method == "PUT")
    assert put.url.path == "/v2/model/manifests/live"
    assert put.headers["Content-Type"] == OCI_MANIFEST
    assert put.content == original[1]
    assert registry.manifest_digest("model", "live") == digest
    assert sorted(registry.tags("model")) == ["live", "v2"]


def test_retag_moves_an_existing_tag() -> None:
    fake = FakeRegistry()
    first = fake.push_image("model", "v1", {"v": "1"})
    fake.push_image("model", "v2", {"v": "2"})
    registry = make(fake)
    registry.retag("model", "v2", "live")
    assert registry.retag("model", "v1", "live") == first
    assert registry.labels("model", "live") == {"v": "1"}


def test_retag_of_a_missing_source_changes_nothing() -> None:
    fake = FakeRegistry()
    fake.push_image("model", "v1", {})
    with pytest.raises(ManifestNotFound):
        make(fake).retag("model", "v5", "live")
    assert not any(request.method == "PUT" for request in fake.requests)


def test_delete_tag_reports_whether_the_registry_can() -> None:
    fake = FakeRegistry()
    fake.push_image("model", "v1", {})
    assert make(fake).delete_tag("model", "v1") is False
    fake.delete_tags = True
    assert make(fake).delete_tag("model", "v1") is True
    assert make(fake).tags("model") == []


def test_delete_manifest_removes_every_tag_of_it() -> None:
    fake = FakeRegistry()
    digest = fake.push_image("model", "v1", {})
    registry = make(fake)
    registry.retag("model", "v1", "live")
    registry.delete_manifest("model", digest)
    assert registry.tags("model") == []


# --- auth ---


def test_bearer_challenge_gets_a_token_with_basic_credentials_and_caches_it() -> None:
    fake = FakeRegistry(auth="bearer")
    fake.push_image("model", "v1", {"a": "1"})
    registry = make(fake, credentials=Credentials(USER, PASSWORD))
    assert registry.tags("model") == ["v1"]
    assert registry.tags("model") == ["v1"]
    assert fake.tokens_issued == 1
    token_request = next(request for request in fake.requests if request.url.host == "auth.example.com")
    assert token_request.url.params["service"] == HOST
    assert token_request.url.params["scope"] == "repository:model:pull"


def test_basic_challenge_uses_env_credentials_when_none_are_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSHIP_REGISTRY_USERNAME", USER)
    monkeypatch.setenv("MLSHIP_REGISTRY_PASSWORD", PASSWORD)
    fake = FakeRegistry(auth="basic")
    fake.push_image("model", "v1", {"a": "1"})
    assert make(fake).labels("model", "v1") == {"a": "1"}


def test_wrong_credentials_raise_without_echoing_them() -> None:
    fake = FakeRegistry(auth="bearer")
    fake.push_image("model", "v1", {})
    with pytest.raises(RegistryError) as caught:
        make(fake, credentials=Credentials(USER, "wrong-password-123")).tags("model")
    error = caught.value
    assert error.exit_code == ExitCode.REGISTRY_ERROR
    assert "credentials" in error.message and HOST in error.message
    text = f"{error.message} {error.hint} {error!r}"
    assert "wrong-password-123" not in text and PASSWORD not in text


def test_missing_credentials_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLSHIP_REGISTRY_USERNAME", raising=False)
    monkeypatch.setattr("mlship.adapters.credentials.registry_credentials", lambda host: None)
    fake = FakeRegistry(auth="basic")
    fake.push_image("model", "v1", {})
    with pytest.raises(RegistryError, match="requires credentials") as caught:
        make(fake).tags("model")
    assert "MLSHIP_REGISTRY_USERNAME" in (caught.value.hint or "")


def test_forbidden_is_a_registry_error() -> None:
    registry = make(FakeRegistry())
    registry._transport = httpx.MockTransport(lambda request: httpx.Response(403, json={"errors": []}))
    with pytest.raises(RegistryError, match="denied"):
        registry.tags("model")


def test_credentials_repr_hides_secrets() -> None:
    credentials = Credentials(USER, PASSWORD, identity_token="tok-123")
    assert PASSWORD not in repr(credentials) and "tok-123" not in repr(credentials)
    assert Credentials.from_env({"MLSHIP_REGISTRY_USERNAME": "u"}) is None
    assert Credentials.from_env(
        {"MLSHIP_REGISTRY_USERNAME": "u", "MLSHIP_REGISTRY_PASSWORD": "p"}
    ) == Credentials("u", "p")


# --- unreachable ---


def test_unreachable_registry_names_the_host() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with pytest.raises(RegistryError) as caught:
        Registry("10.1.2.3:5000", insecure=True, transport=httpx.MockTransport(refuse)).tags("model")
    assert "10.1.2.3:5000" in caught.value.message and "unreachable" in caught.value.message
    assert caught.value.hint


def test_tls_to_a_plain_http_registry_hints_at_http() -> None:
    def tls_fails(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[SSL: WRONG_VERSION_NUMBER] wrong version number", request=request)

    with pytest.raises(RegistryError) as caught:
        Registry("registry.lan:5000", transport=httpx.MockTransport(tls_fails)).tags("model")
    assert "http://registry.lan:5000" in (caught.value.hint or "")


def test_a_closed_port_on_this_machine_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RegistryError, match=f"127.0.0.1:{port} is unreachable"):
        Registry(f"127.0.0.1:{port}", timeout=3).tags("model")


def test_an_unexpected_status_names_the_registry_error() -> None:
    registry = Registry(
        HOST,
        transport=httpx.MockTransport(
            lambda request: httpx.Response(
                500, json={"errors": [{"code": "UNKNOWN", "message": "disk full"}]}
            )
        ),
    )
    with pytest.raises(RegistryError, match="HTTP 500.*disk full"):
        registry.manifest_digest("model", "v1")
