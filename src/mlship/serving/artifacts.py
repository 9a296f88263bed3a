"""Model artefacts saved with skops: the trust record the build writes, the check at start, and the loader
solution.py calls.

joblib and pickle files run code when loaded: the image trusts them only by their recorded sha256. A
skops file (``model.format: skops``) instead lists every type it will create, and loading it creates no
type that is not trusted. ``mlship build`` reads the types each ``.skops`` artefact holds beyond skops's
own safe defaults (``skops.io.get_untrusted_types``, which creates nothing) and records them in
``artifact-trust.json`` next to service.json (and in the image label ``dev.mlship.model.trusted_types``)::

    {"format": "skops", "trusted_types": {"model/model.skops": ["mymodule.MyTransformer"]}}

At start the runtime refuses (one log line, exit code 3) a ``.skops`` artefact that is not recorded or
holds any type beyond its recorded list, before solution.py is imported. solution.py then loads the file
with ``load(path)`` from this module, which trusts exactly the recorded list::

    try:  # in the image: the serving runtime
        from mlship_serving.artifacts import load
    except ImportError:  # on your machine (mlship test, mlship serve): mlship's copy of it
        from mlship.serving.artifacts import load

Without a record (``mlship test``, ``mlship serve`` on a working folder, a notebook), ``load`` trusts the
types the file holds now: exactly the list the next build will record and show.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRUST_FILE = "artifact-trust.json"
SKOPS_SUFFIX = ".skops"
FORMATS = ("joblib", "pickle", "skops")


class ArtifactTrustError(RuntimeError):
    """An artefact holds what the build did not record, or the trust record is unusable (one line)."""


@dataclass(frozen=True)
class ArtifactTrust:
    """artifact-trust.json: the artefacts' format and, for skops files, the types each may create."""

    format: str = "joblib"
    trusted_types: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = TRUST_FILE) -> ArtifactTrust:
        """Validate the record; raise ArtifactTrustError naming the field."""
        if not isinstance(data, Mapping) or set(data) - {"format", "trusted_types"}:
            raise ArtifactTrustError(f"{where}: expected {{'format', 'trusted_types'}}, got {data!r:.200}")
        kind = data.get("format", "joblib")
        if kind not in FORMATS:
            raise ArtifactTrustError(f"{where}.format: expected one of {', '.join(FORMATS)}, got {kind!r}")
        types = data.get("trusted_types") or {}
        if not isinstance(types, Mapping) or not all(
            isinstance(path, str) and isinstance(names, list) and all(isinstance(n, str) for n in names)
            for path, names in types.items()
        ):
            raise ArtifactTrustError(f"{where}.trusted_types: expected {{relative path: [type names]}}")
        return cls(format=kind, trusted_types={path: sorted(names) for path, names in types.items()})

    @classmethod
    def from_file(cls, path: Path) -> ArtifactTrust:
        """Read and validate a record file."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ArtifactTrustError(f"{path}: cannot be read as JSON: {error}") from error
        return cls.from_dict(data, where=str(path))

    @classmethod
    def for_project(cls, project_dir: Path) -> ArtifactTrust | None:
        """The record next to service.json, or None when there is none (a working folder)."""
        path = Path(project_dir) / TRUST_FILE
        return cls.from_file(path) if path.is_file() else None

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (the inverse of ``from_dict``)."""
        return {"format": self.format, "trusted_types": {k: list(v) for k, v in self.trusted_types.items()}}


def untrusted_types(path: Path, name: str | None = None) -> list[str]:
    """The types the skops file `path` holds beyond skops's safe defaults, sorted; reads the file's
    schema only, creates nothing. ArtifactTrustError (naming the file as `name`, default its file name)
    when skops is missing or the file is not a skops file."""
    name = name or path.name
    try:
        import skops.io as sio  # type: ignore[import-untyped]  # only in images of skops projects
    except ImportError as error:
        raise ArtifactTrustError(
            f"{name}: reading a skops file needs the package skops (pip install 'skops>=0.16')"
        ) from error
    try:
        return sorted({str(name) for name in sio.get_untrusted_types(file=path)})
    except Exception as error:  # a corrupt or foreign file raises zipfile, JSON or key errors
        text = str(error).strip().splitlines()
        raise ArtifactTrustError(
            f"{name}: not a readable skops file ({type(error).__name__}: {text[0] if text else ''})"
        ) from error


@dataclass
class _Recorded:
    """What the runtime found recorded at start: set by `enforce`, read by `load`."""

    enforcing: bool = False
    trusted: dict[Path, list[str]] = field(default_factory=dict)


_RECORDED = _Recorded()


def enforce(project_dir: Path, artifacts: str, trust: ArtifactTrust | None) -> None:
    """For skops artefacts: refuse any ``.skops`` file under `artifacts` that the record does not list
    or that holds a type beyond its list (and a listed file that is missing); remember each file's list
    for `load`. Nothing to do for joblib/pickle artefacts or without a record."""
    _RECORDED.enforcing = False
    _RECORDED.trusted.clear()
    if trust is None or trust.format != "skops":
        return
    root = Path(project_dir).resolve()
    folder = (root / artifacts).resolve()
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    for relative in sorted(trust.trusted_types):
        if not (root / relative).is_file():
            raise ArtifactTrustError(
                f"artifact {relative}: recorded in {TRUST_FILE} but missing; rebuild the image"
            )
    for path in files:
        if path.suffix != SKOPS_SUFFIX:
            continue
        relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        recorded = trust.trusted_types.get(relative)
        if recorded is None:
            raise ArtifactTrustError(
                f"artifact {relative}: a skops file the build did not record in {TRUST_FILE}; "
                "refusing to load it"
            )
        extra = sorted(set(untrusted_types(path)) - set(recorded))
        if extra:
            raise ArtifactTrustError(
                f"artifact {relative}: holds type(s) the build did not record: {', '.join(extra)} "
                f"(recorded: {', '.join(recorded) or 'none'}); refusing to load it"
            )
        _RECORDED.trusted[path] = list(recorded)
    _RECORDED.enforcing = True


def load(path: Path | str) -> Any:
    """Load the skops file `path`, trusting exactly the types the build recorded for it (in the image),
    or, without a record (mlship test, mlship serve, a notebook), the types it holds now: the list the
    next build records. In the image a skops file the build did not record is refused."""
    import skops.io as sio

    resolved = Path(path).resolve()
    trusted = _RECORDED.trusted.get(resolved)
    if trusted is None:
        if _RECORDED.enforcing:
            raise ArtifactTrustError(
                f"{path}: not a skops artefact the build recorded in {TRUST_FILE}; refusing to load it"
            )
        trusted = untrusted_types(resolved)
    return sio.load(resolved, trusted=trusted)
