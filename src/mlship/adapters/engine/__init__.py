"""The container engine, through the Docker API: find it, build (streamed), run, tag, push (checked).

This package is the only importer of the docker SDK (inside functions, so `mlship --help` stays fast).
It talks to Docker Engine, Docker Desktop or podman's Docker-compatible socket alike, and turns every
`docker.errors.*` / connection error into an `mlship.errors` subclass:

    no engine answers, or it went away mid-operation  → EngineUnavailable (exit 6)
    a build step failed, a container did not get ready → BuildFailed (exit 7)
    no space left on device (here or in the engine)    → BuildFailed (exit 7), naming it, with what to free
    a push was refused or the registry is unreachable  → RegistryError (exit 8)

    core.py        finding the engine, translating its errors
    images.py      build, tag, inspect, remove, push, pull
    containers.py  run a container until ready; read files and layers without starting one
"""

from __future__ import annotations

from mlship.adapters.engine.containers import (
    ImageFile,
    image_history,
    image_layers,
    read_file,
    read_files,
    read_tree,
    run,
    save_layers,
    wait_ready,
)
from mlship.adapters.engine.core import (
    API_TIMEOUT_S,
    DISK_FULL_ERRNOS,
    DISK_FULL_HINT,
    DOCKER_DESKTOP_SOCKET,
    DOCKER_SOCKET,
    LOG_TAIL_LINES,
    PING_TIMEOUT_S,
    PODMAN_ROOT_SOCKET,
    START_HINT,
    BuiltImage,
    EngineCandidate,
    EngineInfo,
    ExecResult,
    LayerFile,
    RunningContainer,
    _clients,
    _translated,
    connect,
    disk_full,
    engine_candidates,
    engine_info,
    forget_engine,
)
from mlship.adapters.engine.images import (
    BuildProgress,
    BuildStepFailed,
    build,
    exists,
    image_labels,
    parse_step,
    pull,
    push,
    registry_of,
    remove,
    split_ref,
    tag,
)

__all__ = [
    "API_TIMEOUT_S",
    "BuildProgress",
    "BuildStepFailed",
    "BuiltImage",
    "DISK_FULL_ERRNOS",
    "DISK_FULL_HINT",
    "DOCKER_DESKTOP_SOCKET",
    "DOCKER_SOCKET",
    "EngineCandidate",
    "EngineInfo",
    "ExecResult",
    "ImageFile",
    "LOG_TAIL_LINES",
    "LayerFile",
    "PING_TIMEOUT_S",
    "PODMAN_ROOT_SOCKET",
    "RunningContainer",
    "START_HINT",
    "_clients",
    "_translated",
    "build",
    "connect",
    "disk_full",
    "engine_candidates",
    "engine_info",
    "exists",
    "forget_engine",
    "image_history",
    "image_labels",
    "image_layers",
    "parse_step",
    "pull",
    "push",
    "read_file",
    "read_files",
    "read_tree",
    "registry_of",
    "remove",
    "run",
    "save_layers",
    "split_ref",
    "tag",
    "wait_ready",
]
