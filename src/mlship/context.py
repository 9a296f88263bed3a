"""Stage the build context: an allow-list of files copied into a fresh folder, hashed, plus the Dockerfile.

Only these are copied, never the whole project: solution.py and the project modules it imports, the model
artefacts, schema.json, the frozen requirements, the serving runtime (as package `mlship_serving`), a
service.json describing them, the rendered Dockerfile and a .dockerignore. Files that look like secrets
(`.env`, `*.pem`, `*.key`, `id_rsa*`, `.git/`, ...) are left out even inside the artefacts folder, with a
warning. Every staged file is mode 0644 (directories 0755): the non-root user can read, nobody writes.

Hashes (hex sha256), recorded in the labels and in service.json:
    model         sha256 of the `sha256sum`-style manifest of the staged artefacts, i.e. of the lines
                  "<sha256>  <path>\\n" sorted by path, paths relative to the project (model/model.joblib);
                  check with `find model -type f | LC_ALL=C sort | xargs sha256sum | sha256sum`
    schema        sha256 of schema.json
    requirements  sha256 of the frozen requirements (requirements.txt in the image)

service.json (read by `mlship_serving.settings.ServiceInfo`):
    {"name", "version", "solution", "artifacts", "schema": "schema.json",
     "serving": {the mlship.yaml `serving` section}, "artifact_sha256": {relative path: sha256},
     "example": {one input row from schema.json}}
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mlship import __version__
from mlship.config import Project
from mlship.console import console
from mlship.deps import FreezeResult, sha256_file
from mlship.dockerfile import (
    DOCKERIGNORE,
    PACKAGING_TOOLS,
    RUNTIME_PACKAGE,
    SBOM_REQUIREMENTS,
    DockerfileContext,
    render_dockerfile,
)
from mlship.errors import BuildFailed
from mlship.templates import templates_dir

SCHEMA_FILE = "schema.json"
SERVICE_FILE = "service.json"
REQUIREMENTS_FILE = "requirements.txt"
SECRET_PATTERNS = (
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    ".pypirc",
    ".npmrc",
    ".git",
    ".mlship",
    ".ipynb_checkpoints",
    "__pycache__",
    "*.pyc",
    ".DS_Store",
)

LABEL_TITLE = "org.opencontainers.image.title"
LABEL_BASE_NAME = "org.opencontainers.image.base.name"
LABEL_MLSHIP_VERSION = "dev.mlship.version"
LABEL_PYTHON = "dev.mlship.python"
LABEL_BASE_IMAGE = "dev.mlship.base.image"
LABEL_MODEL_SHA256 = "dev.mlship.model.sha256"
LABEL_MODEL_FORMAT = "dev.mlship.model.format"
LABEL_SCHEMA_SHA256 = "dev.mlship.schema.sha256"
LABEL_REQUIREMENTS_SHA256 = "dev.mlship.requirements.sha256"


class StagedContext(BaseModel):
    """A build context ready for the engine, and what was recorded about it."""

    directory: Path
    dockerfile: str
    labels: dict[str, str]
    service: dict[str, Any]
    artifact_sha256: dict[str, str]
    model_sha256: str
    schema_sha256: str
    requirements_sha256: str
    local_modules: list[str]
    left_out: list[str]


def is_secret_like(relative: Path) -> bool:
    """Whether any part of a relative path matches a pattern that never belongs in an image."""
    return any(fnmatch.fnmatch(part, pattern) for part in relative.parts for pattern in SECRET_PATTERNS)


def runtime_source() -> Path:
    """The serving runtime's package folder, copied into the image as `mlship_serving`."""
    return Path(__file__).resolve().parent / "serving"


def manifest_sha256(hashes: dict[str, str]) -> str:
    """sha256 of the `sha256sum`-style manifest of `{relative path: sha256}` (sorted by path bytes)."""
    lines = "".join(
        f"{digest}  {path}\n" for path, digest in sorted(hashes.items(), key=lambda i: i[0].encode())
    )
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


class ServiceFiles(BaseModel):
    """What the serving runtime serves from, staged into a folder (a build context, or for `mlship serve`)."""

    solution: str
    artifacts: str
    local_modules: list[str]
    service: dict[str, Any]
    artifact_sha256: dict[str, str]
    schema_sha256: str
    left_out: list[str]


def stage_service_files(
    project: Project,
    directory: Path,
    *,
    version: str = "dev",
    local_modules: list[str] | None = None,
    record_hashes: bool = True,
) -> ServiceFiles:
    """Copy solution.py and its local modules, the artefacts and schema.json into `directory` at the same
    relative paths, and write the service.json the runtime reads. Without `record_hashes`, service.json
    lists no artefact hashes (the runtime then checks none: `mlship serve` on a working folder)."""
    from mlship.schema import load_schema

    root = project.root.resolve()
    config = project.config
    schema = load_schema(project.schema_path)
    left_out: list[str] = []
    solution = _relative(project.solution_path, root, "model.solution")
    modules = sorted(set(local_modules or []) - {solution})
    for relative in [solution, *modules]:
        _copy_file(root / relative, directory / relative)
    artifacts = _relative(project.artifacts_path, root, "model.artifacts")
    artifact_sha256 = _copy_artifacts(project.artifacts_path, root, directory, left_out)
    if not artifact_sha256:
        raise BuildFailed(
            f"model.artifacts: '{config.model.artifacts}' holds no files to ship",
            hint="train the model first (it writes into the artefacts folder), or fix model.artifacts",
        )
    schema_sha256 = _copy_file(project.schema_path, directory / SCHEMA_FILE)
    service = {
        "name": config.name,
        "version": version,
        "solution": solution,
        "artifacts": artifacts + ("/" if project.artifacts_path.is_dir() else ""),
        "schema": SCHEMA_FILE,
        "serving": config.serving.model_dump(mode="json"),
        "artifact_sha256": artifact_sha256 if record_hashes else {},
        "example": schema.get("example"),
    }
    _write(directory / SERVICE_FILE, json.dumps(service, indent=2, sort_keys=True) + "\n")
    if left_out:
        console.print(
            "[yellow]note:[/] left out (they look like secrets or caches): " + ", ".join(left_out),
            soft_wrap=True,
        )
    return ServiceFiles(
        solution=solution,
        artifacts=artifacts,
        local_modules=modules,
        service=service,
        artifact_sha256=artifact_sha256,
        schema_sha256=schema_sha256,
        left_out=left_out,
    )


def stage_context(
    project: Project,
    lock: FreezeResult,
    directory: Path,
    *,
    base_image: str,
    base_field: str = "image.base",
    version: str = "dev",
    command: str = "mlship build",
    local_modules: list[str] | None = None,
) -> StagedContext:
    """Copy the allow-listed files into `directory` (empty or missing), write service.json, the
    Dockerfile and .dockerignore; return the hashes and labels. Raises ConfigError/BuildFailed."""
    config = project.config
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise BuildFailed(f"{directory}: the build context folder is not empty")
    files = stage_service_files(project, directory, version=version, local_modules=local_modules)
    artifact_sha256, schema_sha256 = files.artifact_sha256, files.schema_sha256
    requirements_sha256 = _copy_file(lock.lock_path, directory / REQUIREMENTS_FILE)
    _copy_file(templates_dir() / SBOM_REQUIREMENTS, directory / "sbom-requirements.txt")
    _copy_runtime(directory / RUNTIME_PACKAGE)
    locked = {pin.split("==")[0].lower() for pin in lock.packages}
    model_sha256 = manifest_sha256(artifact_sha256)
    labels = {
        **config.image.labels,
        LABEL_TITLE: config.name,
        LABEL_BASE_NAME: base_image,
        LABEL_MLSHIP_VERSION: __version__,
        LABEL_PYTHON: config.python,
        LABEL_BASE_IMAGE: base_image,
        LABEL_MODEL_SHA256: model_sha256,
        LABEL_MODEL_FORMAT: config.model.format,
        LABEL_SCHEMA_SHA256: schema_sha256,
        LABEL_REQUIREMENTS_SHA256: requirements_sha256,
    }
    dockerfile = render_dockerfile(
        DockerfileContext(
            base_image=base_image,
            python=config.python,
            port=config.serving.port,
            workers=config.serving.workers,
            solution=files.solution,
            artifacts=files.artifacts,
            mlship_version=__version__,
            command=command,
            labels=labels,
            env=dict(config.image.env),
            system_packages=tuple(config.image.system_packages),
            local_modules=tuple(files.local_modules),
            packaging_tools=tuple(tool for tool in PACKAGING_TOOLS if tool not in locked),
            fields={"base_image": base_field},
        )
    )
    _write(directory / "Dockerfile", dockerfile)
    _write(directory / ".dockerignore", DOCKERIGNORE)
    for folder in [directory, *directory.rglob("*")]:
        if folder.is_dir():
            folder.chmod(0o755)
    return StagedContext(
        directory=directory,
        dockerfile=dockerfile,
        labels=labels,
        service=files.service,
        artifact_sha256=artifact_sha256,
        model_sha256=model_sha256,
        schema_sha256=schema_sha256,
        requirements_sha256=requirements_sha256,
        local_modules=files.local_modules,
        left_out=files.left_out,
    )


def _relative(path: Path, root: Path, field: str) -> str:
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise BuildFailed(f"mlship.yaml {field}: '{path}' is outside the project folder")
    if not resolved.exists():
        raise BuildFailed(
            f"mlship.yaml {field}: '{resolved.relative_to(root).as_posix()}' does not exist",
            hint="fix the path in mlship.yaml, or train the model first",
        )
    return resolved.relative_to(root).as_posix()


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o644)


def _copy_file(source: Path, destination: Path) -> str:
    """Copy a file's content (symlinks followed), mode 0644; return its sha256."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)
    destination.chmod(0o644)
    return sha256_file(destination)


def _copy_artifacts(artifacts: Path, root: Path, directory: Path, left_out: list[str]) -> dict[str, str]:
    """Copy the model artefacts (a file or a folder), leaving out secret-like files; refuse symlinks that
    lead outside the project. Returns {relative path: sha256}."""
    hashes: dict[str, str] = {}
    if artifacts.is_file():
        files = [artifacts]
    else:
        files = []
        seen: set[Path] = set()
        for current, folders, names in os.walk(artifacts, followlinks=True):
            real = Path(current).resolve()
            if real in seen:  # a symlink loop
                folders.clear()
                continue
            seen.add(real)
            folders.sort()
            files.extend(Path(current) / name for name in sorted(names))
    for file in files:
        relative = Path(os.path.relpath(file, root))
        if is_secret_like(relative):
            left_out.append(relative.as_posix())
            continue
        target = file.resolve()
        if not target.is_relative_to(root):
            raise BuildFailed(
                f"model.artifacts: {relative.as_posix()} is a link to {target}, outside the project folder",
                hint="copy the file into the project instead of linking to it",
            )
        hashes[relative.as_posix()] = _copy_file(file, directory / relative)
    return hashes


def _copy_runtime(destination: Path) -> None:
    source = runtime_source()
    if not (source / "__init__.py").is_file() and not (source / "__main__.py").is_file():
        raise BuildFailed(f"{source}: mlship's serving runtime is missing", hint="reinstall mlship")
    for file in sorted(source.rglob("*")):
        relative = file.relative_to(source)
        if file.is_dir() or "__pycache__" in relative.parts or file.suffix == ".pyc":
            continue
        _copy_file(file, destination / relative)
