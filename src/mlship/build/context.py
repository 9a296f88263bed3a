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

    files         sha256 of /app/mlship-files.sha256, the `sha256sum`-style manifest of every file the build
                  context puts under /app (paths relative to /app: requirements.txt, mlship_serving/…,
                  project/solution.py, project/model/…, project/service.json, …); `mlship verify` checks it

service.json (read by `mlship_serving.settings.ServiceInfo`):
    {"name", "version", "solution", "artifacts", "schema": "schema.json",
     "serving": {the mlship.yaml `serving` section}, "artifact_sha256": {relative path: sha256},
     "example": {one input row from schema.json}}

artifact-trust.json (read by `mlship_serving.artifacts`), next to service.json:
    {"format": "joblib" | "pickle" | "skops", "trusted_types": {"model/model.skops": [type names]}}
    for skops artefacts, the types each `.skops` file holds beyond skops's safe defaults, which the service
    trusts and nothing else (also in the label dev.mlship.model.trusted_types, as compact JSON)
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mlship import __version__
from mlship.build.blessing import blessing_label
from mlship.build.dockerfile import (
    DOCKERIGNORE,
    PACKAGING_TOOLS,
    RUNTIME_PACKAGE,
    SBOM_REQUIREMENTS,
    DockerfileContext,
    render_dockerfile,
)
from mlship.build.requirements import FreezeResult, sha256_file
from mlship.console import console
from mlship.errors import BuildFailed
from mlship.project.config import Project
from mlship.project.templates import templates_dir

SCHEMA_FILE = "schema.json"
SERVICE_FILE = "service.json"
REQUIREMENTS_FILE = "requirements.txt"
FILES_MANIFEST = "mlship-files.sha256"  # in the build context and at /app/ in the image
SBOM_REQUIREMENTS_FILE = "sbom-requirements.txt"
# What the serving runtime needs beyond its requirements.txt for a model.format (frozen with the project's).
FORMAT_REQUIREMENTS = {"skops": ("skops>=0.16",)}
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
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
LABEL_BLESSING = "dev.mlship.blessing"  # `mlship retrain`'s record, when it blessed exactly this model
LABEL_MODEL_FORMAT = "dev.mlship.model.format"
LABEL_SCHEMA_SHA256 = "dev.mlship.schema.sha256"
LABEL_REQUIREMENTS_SHA256 = "dev.mlship.requirements.sha256"
LABEL_MODEL_TRUSTED_TYPES = "dev.mlship.model.trusted_types"
LABEL_FILES_SHA256 = "dev.mlship.files.sha256"


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
    files_sha256: str
    trusted_types: dict[str, list[str]]
    local_modules: list[str]
    left_out: list[str]


def is_secret_like(relative: Path) -> bool:
    """Whether any part of a relative path matches a pattern that never belongs in an image."""
    return any(fnmatch.fnmatch(part, pattern) for part in relative.parts for pattern in SECRET_PATTERNS)


def runtime_source() -> Path:
    """The serving runtime's package folder, copied into the image as `mlship_serving`."""
    return Path(__file__).resolve().parents[1] / "serving"


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
    trusted_types: dict[str, list[str]]
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
    relative paths, and write the service.json and artifact-trust.json the runtime reads. Without
    `record_hashes`, service.json lists no artefact hashes and no trust record is written (the runtime then
    checks neither: `mlship serve` on a working folder)."""
    from mlship.project.schema import load_schema

    root = project.root.resolve()
    config = project.config
    schema = load_schema(project.schema_path)
    left_out: list[str] = []
    solution = _relative(project.solution_path, root, "model.solution")
    modules = sorted(set(local_modules or []) - {solution})
    for relative in [solution, *modules]:
        _copy_file(root / relative, directory / relative)
    artifacts = _relative(project.artifacts_path, root, "model.artifacts")
    artifact_sha256 = copy_artifacts(project.artifacts_path, root, directory, left_out)
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
        "fallback": None if config.fallback is None else config.fallback.service_section(),
    }
    _write(directory / SERVICE_FILE, json.dumps(service, indent=2, sort_keys=True) + "\n")
    trusted_types: dict[str, list[str]] = {}
    if record_hashes:
        from mlship.serving.artifacts import TRUST_FILE, ArtifactTrust

        trusted_types = record_trusted_types(config.model.format, artifact_sha256, directory)
        trust = ArtifactTrust(format=config.model.format, trusted_types=trusted_types)
        _write(directory / TRUST_FILE, json.dumps(trust.to_dict(), indent=2, sort_keys=True) + "\n")
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
        trusted_types=trusted_types,
        left_out=left_out,
    )


def record_trusted_types(
    model_format: str, artifacts: dict[str, str], directory: Path
) -> dict[str, list[str]]:
    """For skops artefacts, {relative path: the types the file holds beyond skops's safe defaults} of every
    staged `.skops` file (reading a skops file's schema creates nothing); {} for joblib/pickle.

    Raises BuildFailed when a skops project has no `.skops` artefact or one cannot be read."""
    from mlship.serving.artifacts import SKOPS_SUFFIX, ArtifactTrustError, untrusted_types

    if model_format != "skops":
        return {}
    recorded: dict[str, list[str]] = {}
    for relative in sorted(artifacts):
        if relative.endswith(PICKLE_SUFFIXES):
            console.print(
                f"[yellow]warning:[/] {relative}: model.format is skops, but this file is pickled; it runs "
                "code if solution.py loads it (the image trusts it only by its sha256)",
                soft_wrap=True,
            )
        if not relative.endswith(SKOPS_SUFFIX):
            continue
        try:
            recorded[relative] = untrusted_types(directory / relative, name=relative)
        except ArtifactTrustError as error:
            raise BuildFailed(
                str(error),
                hint="save the model with skops.io.dump(model, 'model/model.skops'), or set model.format",
            ) from error
        listed = ", ".join(recorded[relative]) or "none beyond skops's defaults"
        console.print(
            f"[dim]note:[/] {relative} (skops): the image trusts these types: {listed}", soft_wrap=True
        )
    if not recorded:
        raise BuildFailed(
            f"model.format: skops, but the artefacts ({', '.join(sorted(artifacts))}) hold no .skops file",
            hint="save the model with skops.io.dump(model, 'model/model.skops'), or set model.format: joblib",
        )
    return recorded


def runtime_requirements(model_format: str, runtime_file: Path, state_dir: Path) -> Path:
    """The serving runtime's requirements for a model.format: its requirements.txt, or (for skops) a copy
    under `state_dir` with the format's own requirements added."""
    extra = FORMAT_REQUIREMENTS.get(model_format)
    if not extra:
        return runtime_file
    state_dir.mkdir(parents=True, exist_ok=True)
    target = state_dir / f"serving-requirements-{model_format}.txt"
    text = runtime_file.read_text(encoding="utf-8").rstrip("\n") + "\n"
    text += "".join(f"{line}  # model.format: {model_format}\n" for line in extra)
    target.write_text(text, encoding="utf-8")
    return target


def image_path(relative: str) -> str:
    """Where a file of the build context lands in the image, relative to /app (as the Dockerfile copies)."""
    if relative in {REQUIREMENTS_FILE, SBOM_REQUIREMENTS_FILE, FILES_MANIFEST} or relative.startswith(
        f"{RUNTIME_PACKAGE}/"
    ):
        return relative
    return f"project/{relative}"


def write_files_manifest(directory: Path) -> str:
    """Write the manifest of every staged file the image gets under /app (not the Dockerfile, .dockerignore
    or the manifest itself), keyed by its path relative to /app; return the manifest's sha256."""
    skipped = {"Dockerfile", ".dockerignore", FILES_MANIFEST}
    hashes = {
        image_path(path.relative_to(directory).as_posix()): sha256_file(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.relative_to(directory).as_posix() not in skipped
    }
    lines = "".join(
        f"{digest}  {path}\n" for path, digest in sorted(hashes.items(), key=lambda item: item[0].encode())
    )
    _write(directory / FILES_MANIFEST, lines)
    return sha256_file(directory / FILES_MANIFEST)


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
    _copy_file(templates_dir() / SBOM_REQUIREMENTS, directory / SBOM_REQUIREMENTS_FILE)
    _copy_runtime(directory / RUNTIME_PACKAGE)
    files_sha256 = write_files_manifest(directory)
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
        LABEL_FILES_SHA256: files_sha256,
    }
    blessing = blessing_label(project, model_sha256)
    if blessing is not None:
        labels[LABEL_BLESSING] = blessing
    if config.model.format == "skops":
        labels[LABEL_MODEL_TRUSTED_TYPES] = json.dumps(
            files.trusted_types, sort_keys=True, separators=(",", ":")
        )
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
        files_sha256=files_sha256,
        trusted_types=files.trusted_types,
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


def copy_artifacts(artifacts: Path, root: Path, directory: Path, left_out: list[str]) -> dict[str, str]:
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


def model_sha256(project: Project) -> str:
    """The model's hash as a build labels it (``dev.mlship.model.sha256``), computed without building."""
    with tempfile.TemporaryDirectory(prefix="mlship-model-") as folder:
        return manifest_sha256(
            copy_artifacts(project.artifacts_path, project.root.resolve(), Path(folder), [])
        )


def is_blessed(project: Project) -> bool:
    """Whether retrain.blessing (blessing.json) blessed the project's model as it is now."""
    return blessing_label(project, model_sha256(project)) is not None
