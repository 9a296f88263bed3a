"""Containers from an image: run one until its health endpoint answers, and read files and layers from a
container that is created and never started."""

from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlship.errors import BuildFailed, MlshipError

if TYPE_CHECKING:
    pass
from mlship.adapters.engine.core import LOG_TAIL_LINES, LayerFile, RunningContainer, _translated, connect

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
