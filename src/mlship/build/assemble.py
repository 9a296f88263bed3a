"""`mlship build`: project → frozen requirements → staged context → image, failing before Docker when it can.

Order: load and validate mlship.yaml, check the base image reference, import-check solution.py, freeze
requirements, stage the context (hashes, service.json, Dockerfile, OpenAPI document) and only then touch
the container engine. The image carries two sets of labels: the project's (in the Dockerfile: hashes of
model, schema, requirements and the files manifest, mlship version, Python, base image, title) and the
build's (passed to the engine: version, revision, created, source, base image digest, plus whatever the
caller adds, e.g. the gate's metrics from `mlship deploy`). Once built, the image is stamped (a FROM-only
build: labels, no layer) with the SBOM's sha256 and the sha256 of its layers' diff IDs, so that `mlship
verify` can tell a layer added on top of the built image.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel

from mlship.adapters import engine as image
from mlship.build.context import runtime_requirements, runtime_source, stage_context
from mlship.build.dockerfile import SBOM_PATH, check_image_reference
from mlship.build.requirements import STATE_DIR, freeze
from mlship.console import console
from mlship.errors import BuildFailed, MlshipError
from mlship.gate.solution_check import check_solution
from mlship.project.config import load_project

LABEL_VERSION = "org.opencontainers.image.version"
LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_CREATED = "org.opencontainers.image.created"
LABEL_SOURCE = "org.opencontainers.image.source"
LABEL_BASE_DIGEST = "org.opencontainers.image.base.digest"
LABEL_MLSHIP_BASE_DIGEST = "dev.mlship.base.digest"
LABEL_SBOM_SHA256 = "dev.mlship.sbom.sha256"
LABEL_LAYERS_SHA256 = "dev.mlship.layers.sha256"
SBOM_FILE = "sbom.cdx.json"
DEFAULT_TAG = "dev"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BuildResult(BaseModel):
    """A built image and what went into it."""

    project: Path
    image_ref: str
    image_id: str
    digest: str | None = None  # the registry digest, known only once pushed
    size_bytes: int
    seconds: float
    labels: dict[str, str]
    base_image: str
    requirements_path: Path
    requirements_reused: bool
    dockerfile_path: Path
    openapi_path: Path
    sbom_path: Path
    model_sha256: str
    left_out: list[str]
    steps: int
    cached_steps: int
    reused_steps: list[str]  # the Dockerfile instructions whose layers came from the cache
    timings: dict[str, float]  # seconds per phase: check, freeze, stage, engine


def build_project(
    project_dir: Path | str = ".",
    *,
    tag: str | None = None,
    base_image: str | None = None,
    no_cache: bool = False,
    version: str | None = None,
    revision: str | None = None,
    extra_labels: dict[str, str] | None = None,
) -> BuildResult:
    """Build the project's image (tagged `<name>:dev` unless `tag` is given) and return what was built.

    `version`, `revision` and `extra_labels` become image labels (revision defaults to the project's git
    commit). Raises ConfigError (3), BuildFailed (7) or EngineUnavailable (6).
    """
    started = time.monotonic()
    project = load_project(project_dir)
    config = project.config
    base = base_image or config.image.base or f"python:{config.python}-slim"
    base_field = "--base-image" if base_image else f"{project.root / 'mlship.yaml'} image.base"
    check_image_reference(base, base_field)
    ref = tag or f"{config.name}:{DEFAULT_TAG}"
    check_image_reference(ref, "--tag")
    labels = build_labels(project.root, version=version, revision=revision, extra=extra_labels)

    timings: dict[str, float] = {}
    clock = time.monotonic()

    def lap(phase: str) -> None:
        nonlocal clock
        now = time.monotonic()
        timings[phase] = round(now - clock, 2)
        clock = now

    local_modules = check_solution(project)
    lap("check")
    state = project.root / STATE_DIR
    runtime = runtime_requirements(config.model.format, runtime_source() / "requirements.txt", state)
    lock = freeze(project, runtime)
    lap("freeze")
    state.mkdir(exist_ok=True)
    command = "mlship build" + (f" --base-image {base}" if base_image else "")
    with tempfile.TemporaryDirectory(prefix="mlship-build-") as scratch:
        staged = stage_context(
            project,
            lock,
            Path(scratch) / "context",
            base_image=base,
            base_field=base_field,
            version=labels[LABEL_VERSION],
            command=command,
            local_modules=local_modules,
        )
        dockerfile_path = state / "Dockerfile"
        shutil.copyfile(staged.directory / "Dockerfile", dockerfile_path)
        openapi_path = write_openapi(staged.directory, state / "openapi.json")
        if config.model.format in {"joblib", "pickle"}:
            console.print(
                f"[dim]note:[/] {config.model.format} files run code when loaded: the image trusts the model "
                f"only by its recorded sha256 ({staged.model_sha256[:12]}…)",
                soft_wrap=True,
            )
        lap("stage")
        image.connect()  # raises EngineUnavailable (exit 6) with what to start
        digest = base_image_digest(base)
        if digest:
            labels[LABEL_BASE_DIGEST] = labels[LABEL_MLSHIP_BASE_DIGEST] = digest
        reused: list[str] = []
        with image.BuildProgress(f"building {ref}") as progress:
            built = image.build(
                staged.directory, ref, labels=labels, no_cache=no_cache, on_log=_tracking(progress, reused)
            )
        lap("engine")
        sbom_sha256 = record_sbom(built.ref, state / SBOM_FILE)
        stamped = stamp_labels(
            built.id,
            built.ref,
            {
                LABEL_SBOM_SHA256: sbom_sha256,
                LABEL_LAYERS_SHA256: layers_sha256(built.layer_ids),
            },
        )
        lap("sbom")
    return BuildResult(
        project=project.root,
        image_ref=built.ref,
        image_id=stamped,
        size_bytes=built.size_bytes,
        seconds=round(time.monotonic() - started, 2),
        labels=image.image_labels(built.ref),
        base_image=base,
        requirements_path=lock.lock_path,
        requirements_reused=lock.reused,
        dockerfile_path=dockerfile_path,
        openapi_path=openapi_path,
        sbom_path=state / SBOM_FILE,
        model_sha256=staged.model_sha256,
        left_out=staged.left_out,
        steps=built.steps,
        cached_steps=built.cached_steps,
        reused_steps=reused,
        timings=timings,
    )


def _tracking(progress: Callable[[str], None], reused: list[str]) -> Callable[[str], None]:
    """Feed the progress view, and note each step the engine took from its cache."""
    current: list[str] = []

    def on_log(line: str) -> None:
        progress(line)
        step = image.parse_step(line)
        if step:
            current[:] = [step[2]]
        elif "Using cache" in line and current:
            reused.append(current[0])

    return on_log


def record_sbom(ref: str, target: Path) -> str:
    """Copy the image's SBOM (made in its build) to `target`; return its sha256 as computed in the image."""
    with image.run(ref) as running:
        summed = running.exec(["sha256sum", SBOM_PATH])
        content = running.exec(["cat", SBOM_PATH])
        digest = summed.output.split()[0] if summed.exit_code == 0 and summed.output.strip() else ""
        if not re.fullmatch(r"[0-9a-f]{64}", digest) or content.exit_code != 0:
            code = running.exit_code()
            stopped = f"; the container stopped with exit code {code}" if code is not None else ""
            raise BuildFailed(
                f"{ref}: the SBOM {SBOM_PATH} could not be read from the image{stopped} "
                f"({(summed.output or content.output).strip()[:200]})",
                hint="the container's last log lines:\n" + running.logs(tail=20).rstrip(),
            )
    target.write_text(content.output, encoding="utf-8")
    return digest


def layers_sha256(layers: list[str]) -> str:
    """sha256 of an image's layer diff IDs (bottom first, one per line): changes with any layer added."""
    return hashlib.sha256("".join(f"{layer}\n" for layer in layers).encode("utf-8")).hexdigest()


def stamp_labels(image_id: str, ref: str, labels: dict[str, str]) -> str:
    """Tag as `ref` the image `image_id` with more labels (a FROM-only build: metadata, no layer); return
    the new image's ID."""
    with tempfile.TemporaryDirectory(prefix="mlship-stamp-") as context:
        (Path(context) / "Dockerfile").write_text(f"FROM {image_id}\n", encoding="utf-8")
        return image.build(Path(context), ref, labels=labels).id


def build_labels(
    root: Path,
    *,
    version: str | None = None,
    revision: str | None = None,
    extra: dict[str, str] | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """The per-build labels: version, created, revision and source (from git when not given), plus
    `extra` (which may override any of them)."""
    labels = {
        LABEL_VERSION: version or DEFAULT_TAG,
        LABEL_CREATED: (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    commit = revision or _git(root, "rev-parse", "HEAD")
    if commit:
        labels[LABEL_REVISION] = commit
    source = _git(root, "config", "--get", "remote.origin.url")
    if source:
        labels[LABEL_SOURCE] = without_credentials(source)
    for key, value in (extra or {}).items():
        if _CONTROL.search(f"{key}{value}"):
            raise BuildFailed(f"label {key!r}: a label must be a single line without control characters")
        labels[key] = value
    return labels


def without_credentials(url: str) -> str:
    """A repository URL without any user:password@ part (tokens in remotes must not reach labels)."""
    parts = urlsplit(url)
    if parts.scheme and parts.netloc and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


def base_image_digest(base: str) -> str | None:
    """The base image's digest (its registry digest, else its local image ID), pulling it when missing.

    None when the engine cannot say; the build goes on without the label, with a warning."""
    try:
        if not image.exists(base):
            return image.pull(base)
        lookup = getattr(image, "image_digest", None)
        if lookup is not None:
            return str(lookup(base))
        # Until image.py offers image_digest(ref): read it through the client image.connect() returns.
        attrs = image.connect().images.get(base).attrs
        repository, _tag = image.split_ref(base)
        for repo_digest in attrs.get("RepoDigests") or []:
            name, _, digest = str(repo_digest).partition("@")
            if digest and (name == repository or name.endswith(f"/{repository}")):
                return digest
        return str(attrs["Id"])
    except MlshipError:
        raise
    except Exception as error:  # the label is informative; the build itself reports engine failures
        console.print(f"[yellow]warning:[/] cannot read the digest of the base image {base}: {error}")
        return None


def _git(root: Path, *args: str) -> str | None:
    try:
        completed = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = completed.stdout.strip()
    return value if completed.returncode == 0 and value and not _CONTROL.search(value) else None


def write_openapi(context_dir: Path, target: Path) -> Path:
    """Write the OpenAPI document the service will serve, generated from the staged service.json and
    schema.json by the serving runtime's own code (before the engine is touched); return its path.

    Raises BuildFailed when schema.json cannot become a request contract or its example row does not
    satisfy it (the container would never become ready: its self-test predicts on that row)."""
    from mlship.serving.columns import SchemaError
    from mlship.serving.contract import InputContract, InvalidRequest
    from mlship.serving.openapi import build_openapi
    from mlship.serving.settings import ServiceInfo, SettingsError

    try:
        info = ServiceInfo.from_file(context_dir / "service.json")
        contract = InputContract.from_schema(
            json.loads((context_dir / info.schema).read_text(encoding="utf-8"))
        )
        example = contract.example_row(info.example)
        contract.validate(example, max_rows=1)
    except (SchemaError, SettingsError) as error:
        raise BuildFailed(f"{error}", hint="fix schema.json (see CONTRIBUTING.md for its format)") from error
    except InvalidRequest as error:
        raise BuildFailed(
            f"schema.json example: the example row does not satisfy the schema ({error})",
            hint="the service predicts on this row at start; fix 'example' in schema.json",
        ) from error
    document = build_openapi(contract, info, example)
    target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return target
