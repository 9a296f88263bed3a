"""A container registry through the OCI distribution API over HTTP: tags, digests, labels, retag.

Reads what a release is (its labels: the gate's metrics, hashes, versions) straight from the image
config blob, without pulling layers and without a container engine. Moves tags (`live`, rollback) by
copying a manifest byte for byte, so the digest never changes. Token (Bearer challenge) and basic auth.

    unreachable, refused, 401/403, unexpected answer → RegistryError (exit 8)
    a tag or digest that does not exist             → ManifestNotFound (a RegistryError)
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from mlship.adapters.credentials import Credentials
from mlship.errors import RegistryError

if TYPE_CHECKING:
    import httpx

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_NEXT_LINK = re.compile(r"<([^>]+)>\s*;\s*rel=\"?next\"?")
_HINT_UNREACHABLE = (
    "start the registry (the loopback one: `scripts/containers.sh up`), or fix image.registry / --registry"
)
_HINT_CREDENTIALS = (
    "set MLSHIP_REGISTRY_USERNAME and MLSHIP_REGISTRY_PASSWORD, or `docker login {host}` "
    "(credentials must allow pull and push on the repository)"
)


@dataclass(frozen=True)
class Manifest:
    """A manifest exactly as the registry stored it."""

    media_type: str
    digest: str
    body: bytes = field(repr=False)

    def json(self) -> dict[str, Any]:
        """The manifest document."""
        document = json.loads(self.body)
        if not isinstance(document, dict):
            raise ValueError("a manifest is a JSON object")
        return document


class ManifestNotFound(RegistryError):
    """The repository has no manifest under that tag or digest."""


def is_loopback(host: str) -> bool:
    """Whether `host` ("127.0.0.1:5000", "localhost", "[::1]:5000") names this machine."""
    name = host
    if name.startswith("["):
        name = name[1 : name.find("]")]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Registry:
    """One registry host, spoken to over the OCI distribution API (HTTP; httpx imported lazily).

    `host` may carry a scheme: "http://" means insecure (plain http), "https://" secure. Without one,
    loopback hosts use http and every other host https, unless `insecure` says otherwise. Credentials,
    when not given, are looked up only if the registry asks for them (env, then the docker config)."""

    def __init__(
        self,
        host: str,
        *,
        insecure: bool | None = None,
        credentials: Credentials | None = None,
        timeout: float = 15.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        scheme = ""
        if "://" in host:
            scheme, host = host.split("://", 1)
        self.host = host.rstrip("/")
        if insecure is None:
            insecure = scheme == "http" if scheme else is_loopback(self.host)
        self.insecure = insecure
        api_host = "registry-1.docker.io" if self.host in DOCKER_HUB_HOSTS else self.host
        self.base_url = f"{'http' if insecure else 'https'}://{api_host}"
        self._credentials = credentials
        self._credentials_resolved = credentials is not None
        self._timeout = timeout
        self._transport = transport
        self._client: httpx.Client | None = None
        self._auth_headers: dict[str, str] = {}  # scope → Authorization header value

    def __repr__(self) -> str:
        return f"Registry({self.base_url!r})"

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # --- public API -----------------------------------------------------------------------------------

    def ping(self) -> None:
        """Check the registry speaks the distribution API (a 401 challenge counts as an answer)."""
        response = self._send("GET", "/v2/", scope=None, authenticate=False)
        if response.status_code not in (200, 401):
            raise RegistryError(
                f"{self.base_url}/v2/ answered HTTP {response.status_code}: not a container registry",
                hint=_HINT_UNREACHABLE,
            )

    def tags(self, repo: str) -> list[str]:
        """The repository's tags (an empty list when the repository does not exist)."""
        repo = self._repo(repo)
        tags: list[str] = []
        path: str | None = f"/v2/{repo}/tags/list?n=1000"
        while path:
            response = self._send("GET", path, scope=f"repository:{repo}:pull")
            if response.status_code == 404:
                return []
            self._check(response, f"listing the tags of {repo}")
            tags.extend(response.json().get("tags") or [])
            match = _NEXT_LINK.search(response.headers.get("link", ""))
            path = match.group(1) if match else None
        return tags

    def manifest(self, repo: str, ref: str) -> Manifest:
        """The manifest (or image index) stored under a tag or digest, byte for byte."""
        repo = self._repo(repo)
        response = self._send(
            "GET",
            f"/v2/{repo}/manifests/{ref}",
            scope=f"repository:{repo}:pull",
            headers={"Accept": MANIFEST_ACCEPT},
        )
        if response.status_code == 404:
            raise self._not_found(repo, ref)
        self._check(response, f"reading the manifest of {repo}:{ref}")
        body = response.content
        computed = "sha256:" + hashlib.sha256(body).hexdigest()
        if ref.startswith("sha256:") and ref != computed:
            raise RegistryError(f"registry {self.host} sent {repo}@{ref} with a different digest {computed}")
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        if not media_type or media_type in {"application/json", "text/plain"}:
            media_type = str(json.loads(body).get("mediaType") or OCI_MANIFEST)
        return Manifest(media_type=media_type, digest=computed, body=body)

    def manifest_digest(self, repo: str, ref: str) -> str | None:
        """The digest of the manifest under a tag, or None when there is no such tag."""
        repo = self._repo(repo)
        response = self._send(
            "HEAD",
            f"/v2/{repo}/manifests/{ref}",
            scope=f"repository:{repo}:pull",
            headers={"Accept": MANIFEST_ACCEPT},
        )
        if response.status_code == 404:
            return None
        self._check(response, f"looking up {repo}:{ref}")
        digest = response.headers.get("docker-content-digest")
        if digest:
            return str(digest)
        try:
            return self.manifest(repo, ref).digest
        except ManifestNotFound:
            return None

    def image_config(self, repo: str, ref: str) -> dict[str, Any]:
        """The image config document (labels, env, history...) of a tag or digest, without layers.

        An image index resolves to this machine's platform (linux/amd64 or arm64), else its first image."""
        repo = self._repo(repo)
        manifest = self.manifest(repo, ref)
        document = manifest.json()
        if manifest.media_type in INDEX_TYPES or "manifests" in document:
            child = _pick_platform(document.get("manifests") or [])
            if child is None:
                raise RegistryError(f"{self.host}/{repo}:{ref} is an image index without an image in it")
            document = self.manifest(repo, child).json()
        config = document.get("config")
        if not isinstance(config, dict) or "digest" not in config:
            raise RegistryError(
                f"{self.host}/{repo}:{ref} has a manifest without an image config "
                f"(media type {manifest.media_type})",
                hint="push the image with a current docker or podman (schema 2 / OCI manifests)",
            )
        blob = self._blob(repo, str(config["digest"]))
        result = json.loads(blob)
        if not isinstance(result, dict):
            raise RegistryError(f"the image config of {self.host}/{repo}:{ref} is not a JSON object")
        return result

    def labels(self, repo: str, ref: str) -> dict[str, str]:
        """The image labels of a tag or digest, read from its config blob (no layers pulled)."""
        config = self.image_config(repo, ref)
        labels = (config.get("config") or {}).get("Labels") or {}
        return {str(key): str(value) for key, value in labels.items()}

    def blob(self, repo: str, digest: str) -> bytes:
        """One blob (a layer, a config) by digest, checked against it."""
        return self._blob(self._repo(repo), digest)

    def retag(self, repo: str, src_ref: str, new_tag: str) -> str:
        """Point `new_tag` at the manifest of `src_ref` (copied byte for byte); return its digest."""
        manifest = self.manifest(repo, src_ref)
        return self.put_manifest(repo, new_tag, manifest.media_type, manifest.body, f"{src_ref} as {new_tag}")

    def put_manifest(self, repo: str, tag: str, media_type: str, body: bytes, what: str = "") -> str:
        """Store a manifest under `tag`, byte for byte (its blobs must be in the repository already); return
        its digest, checked against the one the registry says it stored."""
        repo = self._repo(repo)
        response = self._send(
            "PUT",
            f"/v2/{repo}/manifests/{tag}",
            scope=f"repository:{repo}:pull,push",
            headers={"Content-Type": media_type},
            content=body,
        )
        self._check(response, f"tagging {repo}:{what or tag}")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        stored = response.headers.get("docker-content-digest", digest)
        if stored != digest:
            raise RegistryError(
                f"registry {self.host} stored {repo}:{tag} as {stored}, not {digest}",
                hint="the registry rewrote the manifest; check its version",
            )
        return digest

    def delete_tag(self, repo: str, tag: str) -> bool:
        """Remove one tag, leaving the image and its other tags; False when the registry cannot
        delete a tag alone (distribution before v3 only deletes whole manifests)."""
        repo = self._repo(repo)
        response = self._send("DELETE", f"/v2/{repo}/manifests/{tag}", scope=f"repository:{repo}:delete")
        if response.status_code == 404:
            raise self._not_found(repo, tag)
        if response.status_code in (400, 405):
            return False
        self._check(response, f"deleting the tag {repo}:{tag}")
        return True

    def delete_manifest(self, repo: str, digest: str) -> None:
        """Delete a manifest by digest, and with it every tag that points at it."""
        repo = self._repo(repo)
        response = self._send("DELETE", f"/v2/{repo}/manifests/{digest}", scope=f"repository:{repo}:delete")
        if response.status_code == 404:
            raise self._not_found(repo, digest)
        if response.status_code == 405:
            raise RegistryError(
                f"registry {self.host} does not allow deletes",
                hint="enable them in its configuration (distribution: storage.delete.enabled: true)",
            )
        self._check(response, f"deleting {repo}@{digest}")

    # --- HTTP and auth --------------------------------------------------------------------------------

    def _repo(self, repo: str) -> str:
        repo = repo.strip("/")
        if repo.startswith(self.host + "/"):
            repo = repo[len(self.host) + 1 :]
        if self.host in DOCKER_HUB_HOSTS and "/" not in repo:
            repo = f"library/{repo}"
        return repo

    def _http(self) -> httpx.Client:
        import httpx

        if self._client is None:
            self._client = httpx.Client(
                base_url=self.base_url,
                timeout=self._timeout,
                transport=self._transport,
                follow_redirects=True,  # blobs are often served from a redirect to object storage
                headers={"User-Agent": "mlship"},
            )
        return self._client

    def _send(
        self,
        method: str,
        path: str,
        *,
        scope: str | None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        authenticate: bool = True,
    ) -> httpx.Response:
        request_headers = dict(headers or {})
        cached = self._auth_headers.get(scope or "")
        if cached:
            request_headers["Authorization"] = cached
        response = self._transmit(method, path, request_headers, content)
        if response.status_code == 401 and authenticate:
            authorization = self._authorize(response.headers.get("www-authenticate", ""), scope)
            if authorization is not None:
                self._auth_headers[scope or ""] = authorization
                request_headers["Authorization"] = authorization
                response = self._transmit(method, path, request_headers, content)
        return response

    def _transmit(
        self, method: str, path: str, headers: Mapping[str, str], content: bytes | None
    ) -> httpx.Response:
        import httpx

        try:
            return self._http().request(method, path, headers=headers, content=content)
        except httpx.TimeoutException as error:
            raise RegistryError(
                f"registry {self.host} did not answer within {self._timeout:g} s ({type(error).__name__})",
                hint=_HINT_UNREACHABLE,
            ) from error
        except httpx.TransportError as error:
            raise self._unreachable(error) from error

    def _unreachable(self, error: Exception) -> RegistryError:
        cause = " ".join(str(error).split()) or type(error).__name__
        hint = _HINT_UNREACHABLE
        lowered = cause.lower()
        if not self.insecure and ("ssl" in lowered or "wrong version number" in lowered or "tls" in lowered):
            hint = (
                f"if {self.host} serves plain http, name it as http://{self.host} "
                "(and mark it insecure for the engine); otherwise install its CA certificate"
            )
        return RegistryError(f"registry {self.base_url} is unreachable: {cause[:300]}", hint=hint)

    def _resolve_credentials(self) -> Credentials | None:
        if not self._credentials_resolved:
            self._credentials_resolved = True
            self._credentials = Credentials.from_env()
            if self._credentials is None:
                try:
                    from mlship.adapters.credentials import registry_credentials

                    self._credentials = registry_credentials(self.host)
                except Exception:  # no docker config or a broken helper: go on anonymously
                    self._credentials = None
        return self._credentials

    def _authorize(self, challenge: str, scope: str | None) -> str | None:
        """The Authorization header answering a 401 challenge (Bearer token or Basic), or None."""
        kind, _, params_text = challenge.strip().partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        credentials = self._resolve_credentials()
        if kind.lower() == "basic":
            if credentials is None:
                return None
            pair = f"{credentials.username}:{credentials.password}".encode()
            return "Basic " + base64.b64encode(pair).decode()
        if kind.lower() != "bearer" or "realm" not in params:
            return None
        return "Bearer " + self._token(params, params.get("scope") or scope, credentials)

    def _token(self, params: Mapping[str, str], scope: str | None, credentials: Credentials | None) -> str:
        import httpx

        query = {key: value for key, value in (("service", params.get("service")), ("scope", scope)) if value}
        try:
            with httpx.Client(
                timeout=self._timeout, transport=self._transport, follow_redirects=True
            ) as client:
                if credentials is not None and credentials.identity_token:
                    response = client.post(
                        params["realm"],
                        data={
                            **query,
                            "grant_type": "refresh_token",
                            "client_id": "mlship",
                            "refresh_token": credentials.identity_token,
                        },
                    )
                else:
                    auth = (credentials.username, credentials.password) if credentials else None
                    response = client.get(params["realm"], params=query, auth=auth)
        except httpx.HTTPError as error:
            raise RegistryError(
                f"the token service of registry {self.host} ({params['realm']}) is unreachable: "
                f"{type(error).__name__}",
                hint=_HINT_UNREACHABLE,
            ) from error
        if response.status_code in (401, 403):
            raise self._credentials_error(response.status_code, "a token", credentials is not None)
        if response.status_code >= 400:
            raise RegistryError(
                f"the token service of registry {self.host} answered HTTP {response.status_code}",
                hint=_HINT_CREDENTIALS.format(host=self.host),
            )
        document = response.json()
        token = document.get("token") or document.get("access_token")
        if not token:
            raise RegistryError(f"the token service of registry {self.host} sent no token")
        return str(token)

    def _credentials_error(self, status: int, what: str, had_credentials: bool) -> RegistryError:
        if status == 403:
            message = f"registry {self.host} denied {what} (HTTP 403)"
        elif had_credentials:
            message = f"registry {self.host} refused the credentials for {what} (HTTP 401)"
        else:
            message = f"registry {self.host} requires credentials for {what} (HTTP 401)"
        return RegistryError(message, hint=_HINT_CREDENTIALS.format(host=self.host))

    def _check(self, response: httpx.Response, what: str) -> None:
        if response.status_code < 400:
            return
        if response.status_code in (401, 403):
            raise self._credentials_error(response.status_code, what, self._credentials is not None)
        raise RegistryError(
            f"registry {self.host} answered HTTP {response.status_code} while {what}: "
            f"{_error_text(response)}",
            hint="check the registry's logs",
        )

    def _not_found(self, repo: str, ref: str) -> ManifestNotFound:
        separator = "@" if ref.startswith("sha256:") else ":"
        return ManifestNotFound(
            f"{self.host}/{repo}{separator}{ref} does not exist",
            hint=f"list what there is with `mlship releases` (tags of {repo})",
        )

    def _blob(self, repo: str, digest: str) -> bytes:
        response = self._send("GET", f"/v2/{repo}/blobs/{digest}", scope=f"repository:{repo}:pull")
        if response.status_code == 404:
            raise RegistryError(
                f"registry {self.host} lacks blob {digest} of {repo}", hint="push the image again"
            )
        self._check(response, f"reading blob {digest} of {repo}")
        body = response.content
        if digest.startswith("sha256:") and "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise RegistryError(f"blob {digest} of {self.host}/{repo} does not match its digest")
        return body


def _error_text(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        if errors:
            first = errors[0]
            return f"{first.get('code', '')} {first.get('message', '')}".strip()
    except (ValueError, AttributeError):
        pass
    return " ".join(response.text.split())[:200] or response.reason_phrase


def _pick_platform(entries: list[dict[str, Any]]) -> str | None:
    """The digest of the image for this machine's platform in an index (attestations skipped)."""
    machine = platform.machine().lower()
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    images = [
        entry
        for entry in entries
        if (entry.get("platform") or {}).get("os", "linux") != "unknown"
        and "vnd.docker.reference.type" not in (entry.get("annotations") or {})
    ]
    for entry in images:
        entry_platform = entry.get("platform") or {}
        if entry_platform.get("os", "linux") == "linux" and entry_platform.get("architecture") == machine:
            return str(entry["digest"])
    return str(images[0]["digest"]) if images else None
