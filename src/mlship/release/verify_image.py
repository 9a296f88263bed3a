"""`mlship verify IMAGE`: check, without running anything in it, that an image holds what its labels say
mlship built.
 Files are read from a container that is created and never started (`mlship.adapters.engine.read_tree`), so
nothing in the image runs, the model included. The checks, in the order in which the first difference is
named:

    model         the artefacts under /app/project/<artifacts>  vs dev.mlship.model.sha256 (their manifest)
    schema        /app/project/schema.json                       vs dev.mlship.schema.sha256
    requirements  /app/requirements.txt, the frozen lock          vs dev.mlship.requirements.sha256
    sbom          /app/sbom.cdx.json                              vs dev.mlship.sbom.sha256
    sbom-lock     the SBOM's components                           vs the lock's pins (names and versions)
    files         /app/mlship-files.sha256 vs dev.mlship.files.sha256, then every file under /app vs that
                  manifest (solution.py and its modules, the serving runtime, service.json, the trust
                  record): a file it does not list was added after the build
    trust         /app/project/artifact-trust.json                vs dev.mlship.model.format / .trusted_types
    layers        the image's layer diff IDs                      vs dev.mlship.layers.sha256: a layer added
                  on top of the built image (a `pip install`, a file copied anywhere) is named by its step

What it shows: the image is consistent with its own labels, so nothing was replaced, added or installed
after mlship built it. It does not show who built it (anyone can build an image with matching labels):
sign images (cosign, notation) for that. A failed check is exit code 7, like a failed build.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from mlship.build.assemble import LABEL_LAYERS_SHA256, LABEL_SBOM_SHA256, layers_sha256
from mlship.build.context import (
    FILES_MANIFEST,
    LABEL_FILES_SHA256,
    LABEL_MODEL_FORMAT,
    LABEL_MODEL_SHA256,
    LABEL_MODEL_TRUSTED_TYPES,
    LABEL_REQUIREMENTS_SHA256,
    LABEL_SCHEMA_SHA256,
    manifest_sha256,
)
from mlship.build.dockerfile import SBOM_PATH
from mlship.build.requirements import pinned_packages
from mlship.errors import BuildFailed, ExitCode, UsageError

APP = "/app"
PROJECT = f"{APP}/project"
REQUIREMENTS_PATH = f"{APP}/requirements.txt"
MANIFEST_PATH = f"{APP}/{FILES_MANIFEST}"
SERVICE_PATH = f"{PROJECT}/service.json"
TRUST_PATH = f"{PROJECT}/artifact-trust.json"
NOT_IN_MANIFEST = frozenset({SBOM_PATH, MANIFEST_PATH})  # made in the build, covered by their own labels
HINT = (
    "this image is not the one mlship built: use the image from the registry you released to, "
    "or build and release it again (mlship deploy)"
)


class VerificationFailed(BuildFailed):
    """An image does not hold what its labels say was built (exit code 7); the message names the file."""


@dataclass(frozen=True)
class Entry:
    """One entry of the image's /app tree, as the checks need it."""

    path: str
    kind: str  # "file", "dir", "link", "other"
    sha256: str | None = None
    content: bytes | None = None


class ImageSource(Protocol):
    """What the checks read from an image: its labels, the entries under /app, its layers and history."""

    def labels(self) -> dict[str, str]: ...
    def tree(self) -> dict[str, Entry]: ...
    def layers(self) -> list[str]: ...
    def history(self) -> list[tuple[str, int]]: ...


class Check(BaseModel):
    """One comparison: what was checked, against which label, and what differs (empty when it matches)."""

    name: str
    path: str
    label: str | None
    ok: bool
    detail: str = ""


class VerifyReport(BaseModel):
    """The verdict on an image: every check, the first difference (naming the file) and the exit code."""

    image: str
    ok: bool
    checks: list[Check]
    error: str | None = None  # the first difference, one line naming the file
    hint: str | None = None
    exit_code: int = 0
    files_checked: int = 0
    seconds: float = 0.0

    def raise_for_failure(self) -> None:
        """Raise VerificationFailed (exit 7) naming the first difference, when there is one."""
        if not self.ok:
            raise VerificationFailed(self.error or f"{self.image} failed verification", hint=self.hint)


def verify_image(ref: str, *, source: ImageSource | None = None, pull: bool = True) -> VerifyReport:
    """Check the local image `ref` (pulled first when missing and `ref` names a registry) against its labels.

    Returns the report (ok False, exit code 7, when anything differs). Raises UsageError (2) when the image
    is neither local nor pullable, RegistryError (8) when pulling fails, EngineUnavailable (6)."""
    started = time.monotonic()
    image_source = source if source is not None else EngineImage.open(ref, pull=pull)
    labels = image_source.labels()
    tree = image_source.tree()
    checks = run_checks(labels, tree, image_source)
    failed = next((check for check in checks if not check.ok), None)
    return VerifyReport(
        image=ref,
        ok=failed is None,
        checks=checks,
        error=f"{ref}: {failed.path}: {failed.detail}" if failed else None,
        hint=HINT if failed else None,
        exit_code=int(ExitCode.BUILD_FAILED) if failed else 0,
        files_checked=sum(1 for entry in tree.values() if entry.kind == "file"),
        seconds=round(time.monotonic() - started, 2),
    )


def run_checks(labels: dict[str, str], tree: dict[str, Entry], source: ImageSource) -> list[Check]:
    """Every check, in the order their first difference is reported."""
    manifest = _files_manifest(labels, tree)
    steps: list[Callable[[], Check]] = [
        lambda: check_model(labels, tree, manifest),
        lambda: check_file("schema", f"{PROJECT}/schema.json", LABEL_SCHEMA_SHA256, labels, tree),
        lambda: check_file("requirements", REQUIREMENTS_PATH, LABEL_REQUIREMENTS_SHA256, labels, tree),
        lambda: check_file("sbom", SBOM_PATH, LABEL_SBOM_SHA256, labels, tree),
        lambda: check_sbom_lists_the_lock(tree),
        lambda: check_files(labels, tree, manifest),
        lambda: check_trust(labels, tree),
        lambda: check_layers(labels, source),
    ]
    return [step() for step in steps]


# --- the checks ---------------------------------------------------------------------------------------


def check_file(name: str, path: str, label: str, labels: dict[str, str], tree: dict[str, Entry]) -> Check:
    """One file's sha256 against the label that recorded it."""
    expected = labels.get(label)
    if not expected:
        return _missing_label(name, path, label)
    entry = tree.get(path)
    if entry is None or entry.kind != "file" or entry.sha256 is None:
        what = "missing" if entry is None else f"not a regular file ({entry.kind})"
        return _fail(name, path, label, f"{what}, but label {label} records it")
    if entry.sha256 != expected:
        return _fail(name, path, label, _differs(entry.sha256, expected, label))
    return Check(name=name, path=path, label=label, ok=True)


def check_model(labels: dict[str, str], tree: dict[str, Entry], manifest: dict[str, str] | None) -> Check:
    """The artefacts' manifest (as `mlship build` computes it) against dev.mlship.model.sha256; a difference
    is named by file, from the files manifest or service.json, whichever agrees with the labels."""
    label = LABEL_MODEL_SHA256
    expected = labels.get(label)
    service = _json(tree.get(SERVICE_PATH))
    artifacts = str(service.get("artifacts") or "model/") if isinstance(service, dict) else "model/"
    folder = f"{PROJECT}/{artifacts.strip('/')}"
    if not expected:
        return _missing_label("model", folder, label)
    found: dict[str, str] = {}
    for path, entry in sorted(tree.items()):
        if path != folder and not path.startswith(f"{folder}/"):
            continue
        relative = path.removeprefix(f"{PROJECT}/")
        if entry.kind in {"link", "other"}:
            return _fail(
                "model",
                path,
                label,
                f"a {'link' if entry.kind == 'link' else 'special file'}; mlship ships regular files",
            )
        if entry.kind == "file" and entry.sha256:
            found[relative] = entry.sha256
    if manifest_sha256(found) == expected:
        return Check(name="model", path=folder, label=label, ok=True)
    recorded = _recorded_artifacts(manifest, service, artifacts.strip("/"), expected)
    for relative in sorted(set(found) | set(recorded or {})):
        if recorded is None:
            break
        if relative not in found:
            return _fail("model", f"{PROJECT}/{relative}", label, "missing, but the build recorded it")
        if relative not in recorded:
            return _fail(
                "model", f"{PROJECT}/{relative}", label, "added after the build (the build did not record it)"
            )
        if found[relative] != recorded[relative]:
            return _fail(
                "model", f"{PROJECT}/{relative}", label, _differs(found[relative], recorded[relative], label)
            )
    return _fail(
        "model",
        folder + "/",
        label,
        _differs(manifest_sha256(found), expected, label) + " (the artefacts' manifest)",
    )


def check_sbom_lists_the_lock(tree: dict[str, Entry]) -> Check:
    """The SBOM's components are exactly the lock's pins: the same names, the same versions."""
    sbom_entry, lock_entry = tree.get(SBOM_PATH), tree.get(REQUIREMENTS_PATH)
    if sbom_entry is None or sbom_entry.content is None or lock_entry is None or lock_entry.content is None:
        missing = SBOM_PATH if sbom_entry is None or sbom_entry.content is None else REQUIREMENTS_PATH
        return _fail("sbom-lock", missing, None, "missing or unreadable")
    try:
        components = sbom_components(json.loads(sbom_entry.content))
    except (ValueError, TypeError, KeyError) as error:
        return _fail(
            "sbom-lock", SBOM_PATH, None, f"not a CycloneDX JSON document ({type(error).__name__}: {error})"
        )
    locked = locked_packages(lock_entry.content.decode("utf-8", "replace"))
    difference = compare_packages(components, locked)
    if difference:
        return _fail("sbom-lock", SBOM_PATH, None, difference)
    return Check(name="sbom-lock", path=SBOM_PATH, label=None, ok=True, detail=f"{len(locked)} packages")


def check_files(labels: dict[str, str], tree: dict[str, Entry], manifest: dict[str, str] | None) -> Check:
    """The files manifest against its label, every file it lists against it, and nothing else under /app."""
    label = LABEL_FILES_SHA256
    if not labels.get(label):
        return _missing_label("files", MANIFEST_PATH, label)
    if manifest is None:
        entry = tree.get(MANIFEST_PATH)
        if entry is None or entry.sha256 is None:
            return _fail("files", MANIFEST_PATH, label, "missing")
        return _fail("files", MANIFEST_PATH, label, _differs(entry.sha256, labels[label], label))
    for relative, expected in sorted(manifest.items(), key=lambda item: item[0].encode()):
        path = f"{APP}/{relative}"
        entry = tree.get(path)
        if entry is None or entry.kind != "file":
            what = "missing" if entry is None else f"not a regular file ({entry.kind})"
            return _fail("files", path, label, f"{what}; the build shipped it")
        if entry.sha256 != expected:
            return _fail(
                "files",
                path,
                label,
                _differs(entry.sha256 or "?", expected, f"{FILES_MANIFEST}, labelled {label}"),
            )
    listed = {f"{APP}/{relative}" for relative in manifest} | NOT_IN_MANIFEST
    for path, entry in sorted(tree.items()):
        if entry.kind != "dir" and path not in listed:
            return _fail("files", path, label, f"added after the build ({FILES_MANIFEST} does not list it)")
    return Check(name="files", path=f"{APP}/", label=label, ok=True, detail=f"{len(manifest)} files")


def check_trust(labels: dict[str, str], tree: dict[str, Entry]) -> Check:
    """artifact-trust.json says the labelled model format and, for skops, the labelled trusted types."""
    label = LABEL_MODEL_FORMAT
    model_format = labels.get(label)
    if not model_format:
        return _missing_label("trust", TRUST_PATH, label)
    record = _json(tree.get(TRUST_PATH))
    if not isinstance(record, dict):
        return _fail("trust", TRUST_PATH, label, "missing or not JSON")
    try:
        expected_types = json.loads(labels.get(LABEL_MODEL_TRUSTED_TYPES) or "{}")
    except ValueError:
        expected_types = None
    if record.get("format") != model_format:
        return _fail(
            "trust",
            TRUST_PATH,
            label,
            f"says format {record.get('format')!r}, but label {label} says {model_format!r}",
        )
    if (record.get("trusted_types") or {}) != expected_types:
        return _fail(
            "trust",
            TRUST_PATH,
            LABEL_MODEL_TRUSTED_TYPES,
            f"trusts {json.dumps(record.get('trusted_types'))}, but label "
            f"{LABEL_MODEL_TRUSTED_TYPES} says {json.dumps(expected_types)}",
        )
    return Check(name="trust", path=TRUST_PATH, label=label, ok=True, detail=model_format)


def check_layers(labels: dict[str, str], source: ImageSource) -> Check:
    """The image's layers are exactly those built: a layer added on top is named by the step that made it."""
    label = LABEL_LAYERS_SHA256
    expected = labels.get(label)
    if not expected:
        return _missing_label("layers", "(layers)", label)
    layers = source.layers()
    if layers_sha256(layers) == expected:
        return Check(name="layers", path="(layers)", label=label, ok=True, detail=f"{len(layers)} layers")
    built = next((n for n in range(len(layers) - 1, 0, -1) if layers_sha256(layers[:n]) == expected), None)
    if built is None:
        return _fail(
            "layers",
            "(layers)",
            label,
            f"the image's {len(layers)} layers are not those mlship built (label {label})",
        )
    added = len(layers) - built
    steps = [step for step, size in source.history() if size > 0 or _makes_layer(step)][:added]
    newest = f": {'; '.join(f'`{_short(step)}`' for step in steps)}" if steps else ""
    return Check(
        name="layers",
        path="(layers)",
        label=label,
        ok=False,
        detail=f"{added} layer{'s' if added > 1 else ''} added on top of the {built} built{newest}",
    )


# --- reading and comparing ----------------------------------------------------------------------------


def sbom_components(document: Any) -> dict[str, str]:
    """{normalised name: version} of a CycloneDX document's components."""
    if not isinstance(document, dict) or document.get("bomFormat") != "CycloneDX":
        raise ValueError("bomFormat is not CycloneDX")
    return {normalise(str(c["name"])): str(c.get("version", "")) for c in document.get("components") or []}


def locked_packages(lock_text: str) -> dict[str, str]:
    """{normalised name: version} of a lock file's `name==version` pins."""
    return {
        normalise(name): version
        for name, _, version in (p.partition("==") for p in pinned_packages(lock_text))
    }


def normalise(name: str) -> str:
    """A package name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def compare_packages(listed: dict[str, str], locked: dict[str, str]) -> str:
    """'' when the SBOM lists exactly the locked packages, else what differs first (one line)."""
    for name in sorted(set(listed) | set(locked)):
        if name not in locked:
            return f"lists {name} {listed[name]}, which the lock ({REQUIREMENTS_PATH}) does not pin"
        if name not in listed:
            return f"does not list {name} {locked[name]}, which the lock pins"
        if listed[name] != locked[name]:
            return f"lists {name} {listed[name]}, but the lock pins {locked[name]}"
    return ""


def _files_manifest(labels: dict[str, str], tree: dict[str, Entry]) -> dict[str, str] | None:
    """{path relative to /app: sha256} from the image's files manifest, when it matches its label."""
    entry = tree.get(MANIFEST_PATH)
    if entry is None or entry.content is None or entry.sha256 != labels.get(LABEL_FILES_SHA256):
        return None
    manifest: dict[str, str] = {}
    for line in entry.content.decode("utf-8", "replace").splitlines():
        digest, separator, path = line.partition("  ")
        if separator and re.fullmatch(r"[0-9a-f]{64}", digest):
            manifest[path] = digest
    return manifest


def _recorded_artifacts(
    manifest: dict[str, str] | None, service: Any, relative_folder: str, expected: str
) -> dict[str, str] | None:
    """The artefacts' recorded hashes {project-relative path: sha256} from whichever record agrees with
    the model label: the verified files manifest, else service.json's artifact_sha256."""
    candidates: list[dict[str, str]] = []
    if manifest is not None:
        prefix = f"project/{relative_folder}"
        candidates.append(
            {
                path.removeprefix("project/"): digest
                for path, digest in manifest.items()
                if path == prefix or path.startswith(f"{prefix}/")
            }
        )
    if isinstance(service, dict) and isinstance(service.get("artifact_sha256"), dict):
        candidates.append({str(k): str(v) for k, v in service["artifact_sha256"].items()})
    return next((c for c in candidates if c and manifest_sha256(c) == expected), None)


def _json(entry: Entry | None) -> Any:
    if entry is None or entry.content is None:
        return None
    try:
        return json.loads(entry.content)
    except ValueError:
        return None


def _differs(found: str, expected: str, recorded_in: str) -> str:
    return f"sha256 {found[:12]}… differs from {expected[:12]}… recorded by the build ({recorded_in})"


def _fail(name: str, path: str, label: str | None, detail: str) -> Check:
    return Check(name=name, path=path, label=label, ok=False, detail=detail)


def _missing_label(name: str, path: str, label: str) -> Check:
    return _fail(
        name,
        path,
        label,
        f"the image has no label {label}: not built by this mlship version, or its labels were removed",
    )


def _makes_layer(step: str) -> bool:
    return "#(nop)" not in step or any(word in step for word in ("#(nop) COPY", "#(nop) ADD"))


def _short(step: str) -> str:
    step = step.removeprefix("/bin/sh -c ").removeprefix("#(nop) ").strip()
    return step if len(step) <= 120 else step[:117] + "…"


# --- the image, read through the engine ---------------------------------------------------------------


class EngineImage:
    """An image in the container engine, read with `mlship.adapters.engine` (files from an unstarted one)."""

    def __init__(self, ref: str) -> None:
        self.ref = ref

    @classmethod
    def open(cls, ref: str, *, pull: bool = True) -> EngineImage:
        """The local image `ref`, pulled first when missing and `ref` names a registry."""
        from mlship.adapters import engine as image

        if not image.exists(ref):
            if not pull or image.registry_of(ref) == "docker.io":
                raise UsageError(
                    f"image {ref} is not in the container engine",
                    hint="build it (mlship build), or give its registry reference (host:port/name:tag)",
                )
            image.pull(ref)
        return cls(ref)

    def labels(self) -> dict[str, str]:
        from mlship.adapters import engine as image

        return image.image_labels(self.ref)

    def tree(self) -> dict[str, Entry]:
        from mlship.adapters import engine as image

        return {
            item.path: Entry(item.path, item.kind, item.sha256, item.content)
            for item in image.read_tree(self.ref, APP)
        }

    def layers(self) -> list[str]:
        from mlship.adapters import engine as image

        return image.image_layers(self.ref)

    def history(self) -> list[tuple[str, int]]:
        from mlship.adapters import engine as image

        return image.image_history(self.ref)
