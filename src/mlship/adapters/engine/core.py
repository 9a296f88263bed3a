"""The container engine, through the Docker API: find it (DOCKER_HOST, Docker, Docker Desktop, podman), and
turn every docker SDK or connection error into an `mlship.errors` subclass (see the package docstring)."""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from mlship.errors import BuildFailed, EngineUnavailable, MlshipError

if TYPE_CHECKING:
    pass


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
