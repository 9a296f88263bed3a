"""The container engine, through the Docker API: find it, build (streamed), run, tag, push (checked).

This is the only module that imports the docker SDK (inside functions, so `mlship --help` stays fast).
It talks to Docker Engine, Docker Desktop or podman's Docker-compatible socket alike, and turns every
`docker.errors.*` / connection error into an `mlship.errors` subclass:

    no engine answers, or it went away mid-operation  → EngineUnavailable (exit 6)
    a build step failed, a container did not get ready → BuildFailed (exit 7)
    no space left on device (here or in the engine)    → BuildFailed (exit 7), naming it, with what to free
    a push was refused or the registry is unreachable  → RegistryError (exit 8)
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import tarfile
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from mlship.adapters.credentials import Credentials
from mlship.console import console
from mlship.errors import BuildFailed, EngineUnavailable, MlshipError, RegistryError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

# Where engines listen when DOCKER_HOST is not set, in the order they are tried (module-level so tests
# can point them at fake sockets).
DOCKER_SOCKET = Path("/var/run/docker.sock")
DOCKER_DESKTOP_SOCKET = Path.home() / ".docker" / "run" / "docker.sock"
PODMAN_ROOT_SOCKET = Path("/run/podman/podman.sock")

PING_TIMEOUT_S = 5.0
API_TIMEOUT_S = 120.0
LOG_TAIL_LINES = 20
START_HINT = (
    "start one: Docker Desktop, `sudo systemctl start docker`, or podman's Docker API with "
    "`podman system service --time=0 unix:///run/podman/podman.sock` and "
    "`export DOCKER_HOST=unix:///run/podman/podman.sock`"
)
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
DISK_FULL_HINT = (
    "free space on that disk: remove old images, containers and build cache (`docker system prune`, "
    "`podman system prune`), or point TMPDIR at a disk with room"
)
_STEP_LINE = re.compile(r"^(?:STEP|Step) (\d+)/(\d+)\s*:\s*(.*)$")
_PUSH_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


# --- results ------------------------------------------------------------------------------------------


class EngineInfo(BaseModel):
    """The engine mlship talks to: where it listens and what it is."""

    url: str
    source: str  # "DOCKER_HOST", "docker socket", "Docker Desktop socket", "podman socket", ...
    name: str  # "podman", "Docker Engine - Community", ...
    version: str
    api_version: str
    os: str = ""
    arch: str = ""

    def __str__(self) -> str:
        return (
            f"{self.name} {self.version} (Docker API {self.api_version}) at {self.url} (from {self.source})"
        )


class BuiltImage(BaseModel):
    """A successfully built image."""

    ref: str
    id: str
    size_bytes: int
    seconds: float
    layers: int
    steps: int = 0
    cached_steps: int = 0
    layer_ids: list[str] = []  # the layers' diff IDs, bottom first (what `mlship verify` compares)


@dataclass(frozen=True)
class EngineCandidate:
    """A place an engine may listen on, and why it is tried."""

    url: str
    source: str


@dataclass(frozen=True)
class ExecResult:
    """The exit code and combined output of a command run inside a container."""

    exit_code: int
    output: str


@dataclass(frozen=True)
class LayerFile:
    """One entry of one layer of a saved image (for checks such as "no secret in any layer")."""

    layer: int  # 0 is the bottom (base) layer
    path: str  # inside the image, without a leading "./" or "/"
    size: int
    is_file: bool
    content: bytes | None = None  # only with save_layers(..., with_content=True), for regular files


@dataclass
class RunningContainer:
    """A container started by `run()`; removed when the `with` block ends."""

    id: str
    name: str
    url: str | None  # http://127.0.0.1:PORT, or None with network_disabled
    port: int | None
    _container: Any = field(repr=False)

    def logs(self, tail: int | None = None) -> str:
        """The container's stdout and stderr so far (the last `tail` lines when given)."""
        with _translated("reading the container's logs", BuildFailed):
            raw = self._container.logs(stdout=True, stderr=True, tail=tail if tail is not None else "all")
        return bytes(raw).decode("utf-8", errors="replace")

    def status(self) -> str:
        """The engine's view of the container: "running", "exited", ..."""
        with _translated("inspecting the container", BuildFailed):
            self._container.reload()
            return str(self._container.status)

    def exit_code(self) -> int | None:
        """The exit code once the container has stopped, else None."""
        with _translated("inspecting the container", BuildFailed):
            self._container.reload()
            state = self._container.attrs.get("State") or {}
        if state.get("Running"):
            return None
        return int(state.get("ExitCode", 0))

    def exec(self, command: list[str]) -> ExecResult:
        """Run a command inside the container and wait for it."""
        with _translated("running a command in the container", BuildFailed):
            result = self._container.exec_run(command, stdout=True, stderr=True)
        return ExecResult(int(result.exit_code), bytes(result.output or b"").decode("utf-8", "replace"))

    def stop(self, timeout: float = 10.0) -> int | None:
        """Send SIGTERM, wait up to `timeout` seconds (then SIGKILL); return the exit code."""
        with _translated("stopping the container", BuildFailed):
            self._container.stop(timeout=int(timeout))
        return self.exit_code()


# --- engine discovery ---------------------------------------------------------------------------------

_clients: dict[tuple[str, ...], tuple[Any, EngineInfo]] = {}


def engine_candidates(environ: Mapping[str, str] | None = None) -> list[EngineCandidate]:
    """Where to look for an engine, in order: DOCKER_HOST alone when it is set (like the docker CLI
    and SDK), else Docker's socket, Docker Desktop's, rootless Docker's, rootless podman's, podman's."""
    env = os.environ if environ is None else environ
    if env.get("DOCKER_HOST"):
        return [EngineCandidate(env["DOCKER_HOST"], "DOCKER_HOST")]
    candidates = [
        EngineCandidate(f"unix://{DOCKER_SOCKET}", "docker socket"),
        EngineCandidate(f"unix://{DOCKER_DESKTOP_SOCKET}", "Docker Desktop socket"),
    ]
    runtime_dir = env.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        candidates.append(EngineCandidate(f"unix://{runtime_dir}/docker.sock", "rootless docker socket"))
        candidates.append(
            EngineCandidate(f"unix://{runtime_dir}/podman/podman.sock", "rootless podman socket")
        )
    candidates.append(EngineCandidate(f"unix://{PODMAN_ROOT_SOCKET}", "podman socket"))
    return candidates


def connect() -> Any:
    """The docker SDK client of the first engine that answers a ping (cached per process).

    Raises EngineUnavailable naming every place tried, with a hint on what to start."""
    candidates = engine_candidates()
    key = tuple(candidate.url for candidate in candidates)
    if key in _clients:
        return _clients[key][0]
    failures: list[str] = []
    for candidate in candidates:
        socket_path = candidate.url.removeprefix("unix://")
        if candidate.url.startswith("unix://") and not Path(socket_path).exists():
            failures.append(f"{candidate.url} (no such socket)")
            continue
        try:
            client, info = _probe(candidate)
        except EngineUnavailable as error:
            failures.append(f"{candidate.url} ({error.message})")
            continue
        _clients[key] = (client, info)
        return client
    hint = START_HINT
    if candidates[0].source == "DOCKER_HOST":
        hint = (
            f"DOCKER_HOST is set, so only it is tried: start that engine or unset DOCKER_HOST; {START_HINT}"
        )
    raise EngineUnavailable(f"no container engine answers; tried {', '.join(failures)}", hint=hint)


def engine_info() -> EngineInfo:
    """Which engine answers, where, and its version (raises EngineUnavailable when none does)."""
    connect()
    key = tuple(candidate.url for candidate in engine_candidates())
    return _clients[key][1]


def forget_engine() -> None:
    """Drop the cached client(s), so the next call looks for an engine again."""
    for client, _info in _clients.values():
        with suppress(Exception):  # closing a dead connection may fail; nothing to do about it
            client.close()
    _clients.clear()


def _probe(candidate: EngineCandidate) -> tuple[Any, EngineInfo]:
    import docker
    import requests

    try:
        if candidate.source == "DOCKER_HOST":
            client = docker.from_env(timeout=int(PING_TIMEOUT_S))
        else:
            client = docker.DockerClient(base_url=candidate.url, timeout=int(PING_TIMEOUT_S))
        client.ping()
        version = client.version()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as error:
        raise EngineUnavailable(_short_cause(error)) from error
    client.api.timeout = API_TIMEOUT_S
    components = [str(component.get("Name", "")) for component in version.get("Components") or []]
    if any("podman" in name.lower() for name in components):
        name = "podman"
    else:
        name = str((version.get("Platform") or {}).get("Name") or "Docker Engine")
    info = EngineInfo(
        url=candidate.url,
        source=candidate.source,
        name=name,
        version=str(version.get("Version", "?")),
        api_version=str(version.get("ApiVersion", client.api.api_version)),
        os=str(version.get("Os", "")),
        arch=str(version.get("Arch", "")),
    )
    return client, info


def disk_full(error: BaseException, action: str | None = None) -> BuildFailed | None:
    """BuildFailed (exit 7) naming the full disk when `error` (or what caused it) is "no space left on
    device" or an exceeded quota; None for any other error."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            path = current.filename2 or current.filename
            writing = f" writing {path}" if path else ""
            doing = f" while {action}" if action else ""
            where = "" if path else f" (temporary files go to {tempfile.gettempdir()})"
            return BuildFailed(f"no space left on device{writing}{doing}{where}", hint=DISK_FULL_HINT)
        current = current.__cause__ or current.__context__
    return None


def _short_cause(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    for pattern, short in (
        ("Connection refused", "connection refused"),
        ("No such file or directory", "no such socket"),
        ("Permission denied", "permission denied"),
        ("timed out", "timed out"),
    ):
        if pattern in text:
            return short
    return " ".join(text.split())[:200]


def _engine_url() -> str:
    for _client, info in _clients.values():
        return info.url
    return "the container engine"


@contextmanager
def _translated(action: str, error_class: type[MlshipError], subject: str = "") -> Iterator[None]:
    """Turn docker SDK and connection errors raised inside the block into mlship errors."""
    import docker
    import requests
    import urllib3

    try:
        yield
    except MlshipError:
        raise
    except docker.errors.ImageNotFound as error:
        raise error_class(
            f"image {subject or '?'} not found in {_engine_url()} while {action}",
            hint="build it first (`mlship build`), or check the image reference",
        ) from error
    except docker.errors.NotFound as error:
        raise error_class(f"{action}: {_api_explanation(error)}") from error
    except docker.errors.APIError as error:
        raise error_class(f"{action} failed: {_api_explanation(error)}") from error
    except (
        requests.exceptions.ConnectionError,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.Timeout,
        urllib3.exceptions.HTTPError,
        docker.errors.DockerException,
        ConnectionError,
    ) as error:
        url = _engine_url()
        forget_engine()
        raise EngineUnavailable(
            f"the container engine at {url} stopped answering while {action} ({_short_cause(error)})",
            hint=START_HINT,
        ) from error
    except OSError as error:  # e.g. the SDK packing the build context into a temporary file
        full = disk_full(error, action)
        if full is None:
            raise
        raise full from error


def _api_explanation(error: Any) -> str:
    text = getattr(error, "explanation", None) or str(error)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(str(text).split())[:500]


def _engine_still_answers() -> bool:
    try:
        connect().ping()
    except Exception:
        forget_engine()
        return False
    return True


# --- build --------------------------------------------------------------------------------------------


def parse_step(line: str) -> tuple[int, int, str] | None:
    """(N, M, instruction) from a build log line "STEP N/M: ..." (podman) or "Step N/M : ..." (Docker)."""
    match = _STEP_LINE.match(line.strip())
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), match.group(3)


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


# --- run ----------------------------------------------------------------------------------------------


@contextmanager
def run(
    ref: str,
    *,
    env: Mapping[str, str] | None = None,
    port: int = 8080,
    network_disabled: bool = False,
    read_only: bool = False,
    command: list[str] | None = None,
    user: str | None = None,
    tmpfs: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> Iterator[RunningContainer]:
    """Run `ref` detached with `port` published on a random 127.0.0.1 port (`init=True`, so SIGTERM
    reaches the server); the container is always removed when the block ends.

    With `network_disabled` the container has no network at all (url is None; use `exec`)."""
    client = connect()
    options: dict[str, Any] = {
        "detach": True,
        "init": True,
        "environment": dict(env or {}),
        "read_only": read_only,
        "labels": {"mlship.managed": "true", **(labels or {})},
    }
    if network_disabled:
        options["network_mode"] = "none"
    else:
        options["ports"] = {f"{port}/tcp": ("127.0.0.1", None)}
    if command is not None:
        options["command"] = command
    if user is not None:
        options["user"] = user
    if tmpfs:
        options["tmpfs"] = dict(tmpfs)
    # Named before it exists, so that an interrupt (Ctrl-C) landing while the engine creates it can
    # still find and remove it.
    options["name"] = f"mlship-{uuid.uuid4().hex[:12]}"
    try:
        with _translated(f"creating a container from {ref}", BuildFailed, subject=ref):
            container = client.containers.create(ref, **options)
    except BaseException as error:
        _remove_named(client, options["name"], wait_s=2.0 if isinstance(error, KeyboardInterrupt) else 0.0)
        raise
    try:
        with _translated(f"starting a container from {ref}", BuildFailed, subject=ref):
            container.start()
            host_port = None if network_disabled else _published_port(container, port)
        yield RunningContainer(
            id=str(container.id),
            name=str(container.name),
            url=f"http://127.0.0.1:{host_port}" if host_port else None,
            port=host_port,
            _container=container,
        )
    finally:
        with suppress(Exception):  # the engine may be gone; the container then is too
            container.remove(force=True)


def _remove_named(client: Any, name: str, wait_s: float) -> None:
    """Remove the container `name` if the engine has it, looking for up to `wait_s` seconds (a create
    request cut short may still complete in the engine)."""
    deadline = time.monotonic() + wait_s
    while True:
        with suppress(Exception):  # not there (yet), or the engine is gone: nothing to remove
            client.containers.get(name).remove(force=True)
            return
        if time.monotonic() >= deadline:
            return
        time.sleep(0.2)


def _published_port(container: Any, port: int) -> int:
    for _ in range(50):
        container.reload()
        bindings = (container.ports or {}).get(f"{port}/tcp") or []
        if bindings and bindings[0].get("HostPort"):
            return int(bindings[0]["HostPort"])
        if container.status not in {"created", "running"}:
            break
        time.sleep(0.1)
    logs = bytes(container.logs(tail=LOG_TAIL_LINES)).decode("utf-8", "replace")
    raise BuildFailed(
        f"container {str(container.id)[:12]} did not publish port {port} (status {container.status})",
        hint=f"its last log lines:\n{logs or '(none)'}",
    )


def wait_ready(
    target: RunningContainer | str, timeout: float = 60.0, *, path: str = "/health/ready"
) -> float:
    """Poll GET `path` until it answers 200; return the seconds it took.

    On timeout (or when the container exits first) raise BuildFailed with the container's last log lines."""
    import httpx

    container = target if isinstance(target, RunningContainer) else None
    base = container.url if container is not None else str(target)
    if base is None:
        raise BuildFailed(
            "the container has no network, so its health endpoint cannot be polled",
            hint="run it without network_disabled, or use exec() inside it",
        )
    url = base.rstrip("/") + path
    started = time.monotonic()
    last = "no answer yet"
    with httpx.Client(timeout=2.0) as http:
        while True:
            try:
                response = http.get(url)
                if response.status_code == 200:
                    return round(time.monotonic() - started, 2)
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as error:
                last = type(error).__name__
            if container is not None:
                code = container.exit_code()
                if code is not None:
                    raise BuildFailed(
                        f"the container exited with code {code} before {url} answered 200",
                        hint=_logs_hint(container),
                    )
            if time.monotonic() - started > timeout:
                raise BuildFailed(
                    f"{url} did not answer 200 within {timeout:g} s (last: {last})",
                    hint=_logs_hint(container) if container else "check that the service started",
                )
            time.sleep(0.2)


def _logs_hint(container: RunningContainer) -> str:
    try:
        logs = container.logs(tail=LOG_TAIL_LINES).rstrip()
    except MlshipError:
        logs = "(the logs could not be read)"
    return "the container's last log lines:\n" + (
        "\n".join(f"  | {line}" for line in logs.splitlines()) or "  | (none)"
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


# --- layers -------------------------------------------------------------------------------------------


def save_layers(
    ref: str, *, with_content: bool = False, max_content_bytes: int = 10_000_000
) -> Iterator[LayerFile]:
    """Every file path in every layer of the local image `ref`, bottom layer first.

    With `with_content`, regular files up to `max_content_bytes` carry their bytes."""
    import json

    client = connect()
    with tempfile.TemporaryFile(prefix="mlship-save-") as archive:
        with _translated(f"saving {ref}", BuildFailed, subject=ref):
            for chunk in client.api.get_image(ref):
                archive.write(chunk)
        archive.seek(0)
        with tarfile.open(fileobj=archive, mode="r:") as outer:
            manifest_member = outer.extractfile("manifest.json")
            if manifest_member is None:
                raise BuildFailed(f"the saved archive of {ref} has no manifest.json")
            manifest = json.loads(manifest_member.read())
            for index, layer_name in enumerate(manifest[0]["Layers"]):
                layer = outer.extractfile(layer_name)
                if layer is None:
                    raise BuildFailed(f"the saved archive of {ref} lacks layer {layer_name}")
                with tarfile.open(fileobj=layer, mode="r|*") as inner:
                    for member in inner:
                        content = None
                        if with_content and member.isfile() and member.size <= max_content_bytes:
                            extracted = inner.extractfile(member)
                            content = extracted.read() if extracted is not None else None
                        yield LayerFile(
                            layer=index,
                            path=member.name.removeprefix("./").lstrip("/"),
                            size=member.size,
                            is_file=member.isfile(),
                            content=content,
                        )


# --- files of an image, read without running it -------------------------------------------------------


@dataclass(frozen=True)
class ImageFile:
    """One entry under a folder of an image, read from a container that was never started."""

    path: str  # absolute inside the image: "/app/project/model/model.joblib"
    kind: str  # "file", "dir", "link" (symbolic or hard) or "other"
    size: int
    sha256: str | None = None  # regular files only
    content: bytes | None = None  # regular files up to max_content_bytes
    link_target: str | None = None


class _ChunkReader(io.RawIOBase):
    """A file object over the byte chunks the engine streams (a tar archive, read once, in order)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


@contextmanager
def _created_container(ref: str) -> Iterator[Any]:
    """A container of `ref` that is created and never started (so nothing in the image runs), to read
    files from; always removed, also when interrupted while the engine creates it."""
    client = connect()
    name = f"mlship-read-{uuid.uuid4().hex[:12]}"
    try:
        with _translated(f"opening {ref} to read its files", BuildFailed, subject=ref):
            container = client.containers.create(
                ref, command=["true"], name=name, network_mode="none", labels={"mlship.managed": "true"}
            )
    except BaseException as error:
        _remove_named(client, name, wait_s=2.0 if isinstance(error, KeyboardInterrupt) else 0.0)
        raise
    try:
        yield container
    finally:
        with suppress(Exception):  # the engine may be gone; the container then is too
            container.remove(force=True)


def _archive_entries(container: Any, ref: str, path: str, max_content_bytes: int) -> Iterator[ImageFile]:
    """Stream `path` out of the container as a tar archive and yield its entries (absolute paths)."""
    import posixpath

    parent = posixpath.dirname(path.rstrip("/")) or "/"
    with _translated(f"reading {path} from {ref}", BuildFailed, subject=ref):
        chunks, _stat = container.get_archive(path)
        with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(chunks), 1 << 20), mode="r|") as archive:
            for member in archive:
                absolute = posixpath.normpath(posixpath.join(parent, member.name))
                if member.isfile():
                    digest = hashlib.sha256()
                    kept = bytearray() if member.size <= max_content_bytes else None
                    stream = archive.extractfile(member)
                    while stream is not None and (block := stream.read(1 << 20)):
                        digest.update(block)
                        if kept is not None:
                            kept += block
                    yield ImageFile(
                        absolute,
                        "file",
                        member.size,
                        sha256=digest.hexdigest(),
                        content=bytes(kept) if kept is not None else None,
                    )
                elif member.isdir():
                    yield ImageFile(absolute, "dir", 0)
                elif member.issym() or member.islnk():
                    yield ImageFile(absolute, "link", 0, link_target=member.linkname)
                else:
                    yield ImageFile(absolute, "other", member.size)


def read_tree(ref: str, directory: str, *, max_content_bytes: int = 16 << 20) -> list[ImageFile]:
    """Every entry under the absolute `directory` of the local image `ref` (itself included), read from
    a container that is created but never started: nothing in the image runs. Regular files carry their
    sha256, and their bytes when at most `max_content_bytes`. Raises BuildFailed when it does not exist."""
    with _created_container(ref) as container:
        return list(_archive_entries(container, ref, directory, max_content_bytes))


def read_files(ref: str, paths: list[str]) -> dict[str, bytes | None]:
    """The bytes of each absolute file path of the local image `ref` (None when it does not exist), read
    from one container that is never started. Raises BuildFailed when a path is not a regular file."""
    import docker

    found: dict[str, bytes | None] = {}
    with _created_container(ref) as container:
        for path in paths:
            try:
                entries = list(_archive_entries(container, ref, path, max_content_bytes=1 << 62))
            except BuildFailed as error:
                if isinstance(error.__cause__, docker.errors.NotFound):
                    found[path] = None
                    continue
                raise
            if len(entries) != 1 or entries[0].kind != "file":
                raise BuildFailed(f"{path} in {ref} is not a regular file")
            found[path] = entries[0].content
    return found


def read_file(ref: str, path: str) -> bytes:
    """The bytes of the absolute file `path` of the local image `ref`, without running it; BuildFailed
    naming the path when it does not exist."""
    content = read_files(ref, [path])[path]
    if content is None:
        raise BuildFailed(f"{path}: no such file in {ref}")
    return content


def image_layers(ref: str) -> list[str]:
    """The diff IDs of the local image's layers (its config's rootfs), bottom layer first."""
    client = connect()
    with _translated(f"inspecting {ref}", BuildFailed, subject=ref):
        attrs = client.images.get(ref).attrs
    return [str(layer) for layer in (attrs.get("RootFS") or {}).get("Layers") or []]


def image_history(ref: str) -> list[tuple[str, int]]:
    """(instruction, size in bytes) of each step that made the local image, newest first."""
    client = connect()
    with _translated(f"reading the history of {ref}", BuildFailed, subject=ref):
        history = client.images.get(ref).history()
    return [
        (" ".join(str(item.get("CreatedBy") or "").split()), int(item.get("Size") or 0)) for item in history
    ]
