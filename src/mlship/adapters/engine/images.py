"""Images in the engine: build (streamed, with a progress view), tag, inspect, remove, push (checked item by
item: a failed push does not raise in the SDK) and pull."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlship.adapters.credentials import Credentials
from mlship.console import console
from mlship.errors import BuildFailed, EngineUnavailable, RegistryError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID
from mlship.adapters.engine.core import (
    _PUSH_DIGEST,
    _STEP_LINE,
    DISK_FULL_HINT,
    LOG_TAIL_LINES,
    START_HINT,
    BuiltImage,
    _engine_still_answers,
    _translated,
    connect,
)

# --- build --------------------------------------------------------------------------------------------


def parse_step(line: str) -> tuple[int, int, str] | None:
    """(N, M, instruction) from a build log line "STEP N/M: ..." (podman) or "Step N/M : ..." (Docker)."""
    match = _STEP_LINE.match(line.strip())
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), match.group(3)


# podman/buildah before 1.43 can fail a build's cache lookup when another build or `rmi` removes a layer
# between listing and reading it (containers/buildah#5674, fixed upstream by ignoring the error). Nothing
# of the build is wrong, so the build is started again, a bounded number of times.
_CACHE_RACE = "layer not known"
CACHE_RACE_RETRIES = 2


def build(
    context_dir: Path,
    tag: str,
    *,
    labels: dict[str, str] | None = None,
    no_cache: bool = False,
    on_log: Callable[[str], None] | None = None,
) -> BuiltImage:
    """Build the Dockerfile in `context_dir` as `tag`, feeding every log line to `on_log`.

    Raises BuildFailed naming the failing step with the tail of its log, EngineUnavailable when the
    engine does not answer or goes away mid-build."""
    context_dir = Path(context_dir)
    if not (context_dir / "Dockerfile").is_file():
        raise BuildFailed(
            f"{context_dir / 'Dockerfile'}: no Dockerfile in the build context",
            hint="stage the build context first (`mlship build` does)",
        )
    retries = 0
    while True:
        try:
            return _build_once(context_dir, tag, labels=labels, no_cache=no_cache, on_log=on_log)
        except BuildStepFailed as failed:
            if _CACHE_RACE not in failed.message or retries == CACHE_RACE_RETRIES:
                raise
            retries += 1
            if on_log is not None:
                on_log(f"a concurrent build removed a cached layer ({_CACHE_RACE}); building again")


def _build_once(
    context_dir: Path,
    tag: str,
    *,
    labels: dict[str, str] | None,
    no_cache: bool,
    on_log: Callable[[str], None] | None,
) -> BuiltImage:
    client = connect()
    started = time.monotonic()
    step: tuple[int, int, str] | None = None
    step_log: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    cached_steps = 0
    image_id = ""
    with _translated(f"building {tag}", BuildFailed, subject=tag):
        stream = client.api.build(
            path=str(context_dir),
            tag=tag,
            labels=labels or None,
            nocache=no_cache,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            timeout=None,  # a silent step (compiling a wheel) may take minutes
        )
        for item in stream:
            if "error" in item or "errorDetail" in item:
                raise _step_failed(tag, step, list(step_log), item)
            if "aux" in item and isinstance(item["aux"], dict) and item["aux"].get("ID"):
                image_id = str(item["aux"]["ID"])
            text = item.get("stream") or item.get("status") or ""
            for line in str(text).splitlines():
                parsed = parse_step(line)
                if parsed:
                    step = parsed
                    step_log.clear()
                elif "Using cache" in line or "---> Using cache" in line:
                    cached_steps += 1
                step_log.append(line)
                if on_log is not None:
                    on_log(line)
    if not image_id and not _engine_still_answers():
        raise EngineUnavailable(f"the container engine went away while building {tag}", hint=START_HINT)
    with _translated(f"inspecting {tag}", BuildFailed, subject=tag):
        image = client.images.get(tag)
    if image_id and image.id != image_id:
        raise BuildFailed(
            f"the engine built {image_id[:19]} but {tag} is {image.id[:19]}",
            hint="another build tagged the same reference at the same time; build again",
        )
    return BuiltImage(
        ref=tag,
        id=str(image.id),
        size_bytes=int(image.attrs.get("Size") or 0),
        seconds=round(time.monotonic() - started, 2),
        layers=len((image.attrs.get("RootFS") or {}).get("Layers") or []),
        layer_ids=[str(layer) for layer in (image.attrs.get("RootFS") or {}).get("Layers") or []],
        steps=step[1] if step else 0,
        cached_steps=cached_steps,
    )


class BuildStepFailed(BuildFailed):
    """A Dockerfile step failed; `step` and `log_tail` keep the details for --json and tests."""

    def __init__(self, message: str, hint: str, step: str | None, log_tail: list[str]) -> None:
        super().__init__(message, hint=hint)
        self.step = step
        self.log_tail = log_tail


def _step_failed(
    tag: str, step: tuple[int, int, str] | None, log_tail: list[str], item: Mapping[str, Any]
) -> BuildStepFailed:
    detail = item.get("errorDetail") or {}
    cause = " ".join(str(item.get("error") or detail.get("message") or "unknown error").split())
    if step:
        where = f"step {step[0]}/{step[1]} `{step[2]}`"
        log_tail = log_tail[1:] if log_tail and parse_step(log_tail[0]) else log_tail
    else:
        where = "before the first step"
    lines = "\n".join(f"  | {line}" for line in log_tail) or "  | (the step printed nothing)"
    remedy = "fix the cause and build again (--no-cache if a cached layer is stale)"
    if "no space left on device" in cause.lower() or "disk quota exceeded" in cause.lower():
        remedy = f"the engine's storage is full: {DISK_FULL_HINT}; then build again"
    return BuildStepFailed(
        f"building {tag} failed at {where}: {cause[:300]}",
        hint=f"the last lines of its log:\n{lines}\n{remedy}",
        step=step[2] if step else None,
        log_tail=log_tail,
    )


class BuildProgress:
    """A rich status view of a streamed build: current step N/M and the last log line.

    Use as `with BuildProgress(tag) as progress: build(..., on_log=progress)`. On a terminal it redraws
    one live line; elsewhere (CI logs) it prints each step once."""

    def __init__(self, title: str = "building image") -> None:
        self.title = title
        self.step: tuple[int, int, str] | None = None
        self.last_line = ""
        self.lines = 0
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> BuildProgress:
        if console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TextColumn("[dim]{task.fields[last]}"),
                console=console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.title, total=None, last="")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __call__(self, line: str) -> None:
        self.lines += 1
        parsed = parse_step(line)
        if parsed:
            self.step = parsed
            if self._progress is None:
                console.print(f"[dim]{self.title}:[/] step {parsed[0]}/{parsed[1]} {parsed[2][:100]}")
        elif line.strip():
            self.last_line = line.strip()
        if self._progress is not None and self._task is not None:
            done, total = (self.step[0] - 1, self.step[1]) if self.step else (0, None)
            description = f"{self.title} step {self.step[0]}/{self.step[1]}" if self.step else self.title
            self._progress.update(
                self._task, completed=done, total=total, description=description, last=self.last_line[-80:]
            )


# --- images: tag, push, pull, inspect -----------------------------------------------------------------


def split_ref(ref: str) -> tuple[str, str]:
    """("registry/repo", "tag") from "registry:port/repo:tag" (tag "latest" when absent)."""
    if "@" in ref:
        repository, digest = ref.rsplit("@", 1)
        return repository, digest
    repository, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return repository, tag


def registry_of(ref: str) -> str:
    """The registry host of an image reference ("docker.io" when the first part is not a host)."""
    first, sep, _rest = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def tag(ref: str, new_ref: str) -> None:
    """Give the local image `ref` the additional name `new_ref`."""
    client = connect()
    repository, new_tag = split_ref(new_ref)
    with _translated(f"tagging {ref} as {new_ref}", BuildFailed, subject=ref):
        if not client.images.get(ref).tag(repository, new_tag):
            raise BuildFailed(f"the engine refused to tag {ref} as {new_ref}")


def exists(ref: str) -> bool:
    """Whether the engine has the image `ref` locally."""
    import docker

    client = connect()
    with _translated(f"looking up {ref}", BuildFailed, subject=ref):
        try:
            client.images.get(ref)
        except docker.errors.ImageNotFound:
            return False
    return True


def image_labels(ref: str) -> dict[str, str]:
    """The labels of the local image `ref`."""
    client = connect()
    with _translated(f"reading the labels of {ref}", BuildFailed, subject=ref):
        image = client.images.get(ref)
    return {str(key): str(value) for key, value in (image.labels or {}).items()}


def remove(ref: str, *, missing_ok: bool = True) -> None:
    """Remove the local image name `ref` (the image itself once no other name uses it)."""
    import docker

    client = connect()
    with _translated(f"removing {ref}", BuildFailed, subject=ref):
        try:
            client.images.remove(ref)
        except docker.errors.ImageNotFound:
            if not missing_ok:
                raise


def _auth_config(host: str) -> dict[str, str] | None:
    """An explicit auth config only for env credentials; otherwise the SDK reads the docker config."""
    credentials = Credentials.from_env()
    if credentials is None:
        return None
    return {"username": credentials.username, "password": credentials.password, "serveraddress": host}


def push(ref: str) -> str:
    """Push `ref` and return the digest the registry stored; every item of the push stream is checked.

    Raises RegistryError naming the registry and the cause (unreachable, refused, http vs https)."""
    client = connect()
    host = registry_of(ref)
    repository, push_tag = split_ref(ref)
    digest = ""
    with _translated(f"pushing {ref} to {host}", RegistryError, subject=ref):
        stream = client.images.push(
            repository, tag=push_tag, stream=True, decode=True, auth_config=_auth_config(host)
        )
        for item in stream:
            if "error" in item or "errorDetail" in item:
                detail = item.get("errorDetail") or {}
                raise _registry_refused(host, ref, str(item.get("error") or detail.get("message") or item))
            aux = item.get("aux")
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = str(aux["Digest"])
            match = _PUSH_DIGEST.search(str(item.get("status") or ""))
            if match:
                digest = match.group(1)
    if not digest:
        if not _engine_still_answers():
            raise EngineUnavailable(f"the container engine went away while pushing {ref}", hint=START_HINT)
        raise RegistryError(
            f"pushing {ref} to {host} ended without the registry confirming a digest",
            hint="push again; check the registry's logs if it repeats",
        )
    return digest


def pull(ref: str) -> str:
    """Pull `ref` from its registry (every stream item checked) and return the local image id.

    The id (the image config's digest) is what identifies the content across engines: podman reports
    every digest the image ever had under every name, so the manifest digest is read from the registry
    instead (`Registry.manifest_digest`)."""
    client = connect()
    host = registry_of(ref)
    repository, pull_tag = split_ref(ref)
    with _translated(f"pulling {ref} from {host}", RegistryError, subject=ref):
        for item in client.api.pull(
            repository, tag=pull_tag, stream=True, decode=True, auth_config=_auth_config(host)
        ):
            if "error" in item or "errorDetail" in item:
                detail = item.get("errorDetail") or {}
                raise _registry_refused(
                    host, ref, str(item.get("error") or detail.get("message") or item), "pulling"
                )
        return str(client.images.get(ref).id)


def _registry_refused(host: str, ref: str, cause: str, action: str = "pushing") -> RegistryError:
    cause = " ".join(cause.split())
    if "pinging container registry" in cause:  # podman prefixes which blob it was pushing: noise
        cause = cause[cause.index("pinging container registry") :]
    lowered = cause.lower()
    insecure_hint = (
        f"if {host} serves plain http, mark it insecure for the engine: Docker: add it to "
        '"insecure-registries" in /etc/docker/daemon.json; podman: `[[registry]] location = '
        f'"{host}"` and `insecure = true` in /etc/containers/registries.conf.d/mlship.conf'
    )
    if "http response to https client" in lowered:
        return RegistryError(
            f"registry {host} speaks plain http, but the engine used https for {ref}", hint=insecure_hint
        )
    if any(
        word in lowered for word in ("connection refused", "no such host", "i/o timeout", "no route to host")
    ):
        return RegistryError(
            f"registry {host} is unreachable while {action} {ref}: {cause[:300]}",
            hint=f"start the registry at {host} (the loopback one: `scripts/containers.sh up`), "
            "or fix image.registry in mlship.yaml / --registry",
        )
    if any(word in lowered for word in ("unauthorized", "denied", "authentication required")):
        return RegistryError(
            f"registry {host} refused the credentials for {ref}: {cause[:300]}",
            hint=f"`docker login {host}`, or set MLSHIP_REGISTRY_USERNAME and MLSHIP_REGISTRY_PASSWORD",
        )
    if "x509" in lowered or "certificate" in lowered or "tls" in lowered:
        return RegistryError(
            f"registry {host}: TLS failed while {action} {ref}: {cause[:300]}",
            hint="install the registry's CA certificate for the engine; " + insecure_hint,
        )
    return RegistryError(
        f"registry {host} refused {ref} while {action}: {cause[:300]}",
        hint="check the registry's address and its logs",
    )
