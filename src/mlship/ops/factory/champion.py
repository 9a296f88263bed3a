"""A release's model, read out of its image in the registry by digest: no pull, no container, nothing run.

    tag (vN or live) → manifest digest → layers, newest first → /app/mlship-files.sha256 (its sha256 is the
    label dev.mlship.files.sha256) → every project/ file it lists, from the newest layer holding it, each
    checked against the manifest → a folder laid out like /app/project (solution.py, model/, schema.json,
    service.json)

Walking from the newest layer down stops as soon as every listed file is found, so the layers of Python
and the dependencies, below the model's, are never downloaded.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mlship.errors import RegistryError, UsageError
from mlship.ops.factory.source import ModelSource, folder_source

if TYPE_CHECKING:
    from mlship.adapters.registry import Registry

FILES_MANIFEST = "app/mlship-files.sha256"
FILES_LABEL = "dev.mlship.files.sha256"
PROJECT = "app/project/"


def _layers(registry: Registry, repo: str, digest: str) -> list[str]:
    document = registry.manifest(repo, digest).json()
    if "manifests" in document:  # an image index: the first image in it
        entries = [
            entry for entry in document["manifests"] if (entry.get("platform") or {}).get("os") != "unknown"
        ]
        if not entries:
            raise RegistryError(f"{registry.host}/{repo}@{digest} is an image index without an image")
        document = registry.manifest(repo, str(entries[0]["digest"])).json()
    return [str(layer["digest"]) for layer in document.get("layers") or []]


def _parse_manifest(text: str) -> dict[str, str]:
    files: dict[str, str] = {}
    for line in text.splitlines():
        digest, separator, path = line.partition("  ")
        if separator and re.fullmatch(r"[0-9a-f]{64}", digest) and path.startswith("project/"):
            files[path.removeprefix("project/")] = digest
    return files


def extract_model(registry: Registry, repo: str, digest: str, folder: Path) -> dict[str, str]:
    """Write the release's /app/project files into `folder`; return {relative path: sha256}.

    Raises RegistryError when the image lacks its files manifest or a file differs from it."""
    labels = registry.labels(repo, digest)
    expected: dict[str, str] | None = None
    found: dict[str, str] = {}
    hidden: set[str] = set()
    for layer in reversed(_layers(registry, repo, digest)):
        if expected is not None and set(expected) <= set(found):
            break
        with tarfile.open(fileobj=io.BytesIO(registry.blob(repo, layer)), mode="r:*") as archive:
            for member in archive:
                name = str(PurePosixPath(member.name.removeprefix("./").lstrip("/")))
                base = PurePosixPath(name)
                if base.name.startswith(".wh."):
                    hidden.add(str(base.parent / base.name.removeprefix(".wh.")))
                    continue
                if not member.isfile() or name in hidden:
                    continue
                if name == FILES_MANIFEST and expected is None:
                    content = _read(archive, member)
                    if hashlib.sha256(content).hexdigest() != labels.get(FILES_LABEL, "").removeprefix(
                        "sha256:"
                    ):
                        raise RegistryError(
                            f"{registry.host}/{repo}@{digest}: /{FILES_MANIFEST} does not match "
                            f"its label {FILES_LABEL}",
                            hint="this image is not the one mlship built; release the model again",
                        )
                    expected = _parse_manifest(content.decode("utf-8"))
                elif name.startswith(PROJECT):
                    relative = name.removeprefix(PROJECT)
                    if relative in found or ".." in PurePosixPath(relative).parts:
                        continue
                    content = _read(archive, member)
                    target = folder / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(content)
                    found[relative] = hashlib.sha256(content).hexdigest()
    if expected is None:
        raise RegistryError(
            f"{registry.host}/{repo}@{digest} has no /{FILES_MANIFEST}: not an image mlship built",
            hint="release the model with `mlship deploy`",
        )
    for relative, sha in expected.items():
        if found.get(relative) != sha:
            what = "is missing" if relative not in found else "differs from the files manifest"
            raise RegistryError(
                f"{registry.host}/{repo}@{digest}: /app/project/{relative} {what}",
                hint="this image is not the one mlship built; release the model again",
            )
    return found


def _read(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = archive.extractfile(member)
    return handle.read() if handle is not None else b""


def resolve_release(registry: Registry, repo: str, version: str) -> tuple[str, str]:
    """(vN, manifest digest) of a release tag; `live` resolves to the vN it points at."""
    from mlship.release.versions import LIVE_TAG, live_version

    tags = registry.tags(repo)
    name = version
    if version == LIVE_TAG:
        name = live_version(registry, repo, tags) or ""
        if not name:
            raise UsageError(
                f"nothing is live in {registry.host}/{repo}", hint="release first with `mlship deploy`"
            )
    digest = registry.manifest_digest(repo, name) if name in tags else None
    if digest is None:
        raise UsageError(
            f"{registry.host}/{repo} has no release '{version}'",
            hint="list the releases with `mlship releases`",
        )
    return name, digest


def registry_for(project_dir: Path, registry: str | None) -> tuple[Any, str]:
    """The registry client and repository of the project in `project_dir`."""
    from mlship.adapters.registry import Registry
    from mlship.project.config import load_project
    from mlship.release.versions import registry_host

    project = load_project(project_dir)
    host = registry_host(project, registry)
    return Registry(host), project.config.name


@contextmanager
def release_source(project_dir: Path, version: str, registry: str | None) -> Iterator[ModelSource]:
    """The model of release `version` (vN or live), extracted into a temporary folder for the block."""
    client, repo = registry_for(project_dir, registry)
    with client, tempfile.TemporaryDirectory(prefix="mlship-release-") as folder:
        name, digest = resolve_release(client, repo, version)
        extract_model(client, repo, digest, Path(folder))
        yield folder_source(Path(folder), name)
