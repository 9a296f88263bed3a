"""`mlship verify` on a fake image made from a real staged build context: a faithful image passes, and each
kind of tampering is caught and named (the real engine: tests/integration/test_verify_image.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mlship.build.assemble import LABEL_LAYERS_SHA256, LABEL_SBOM_SHA256, layers_sha256
from mlship.build.context import LABEL_MODEL_FORMAT, LABEL_MODEL_TRUSTED_TYPES, image_path, stage_context
from mlship.build.requirements import FreezeResult, sha256_file
from mlship.cli import app
from mlship.errors import UsageError
from mlship.project.config import load_project
from mlship.release.verify_image import (
    EngineImage,
    Entry,
    VerificationFailed,
    check_trust,
    compare_packages,
    verify_image,
)
from tests.build_projects import write_light_project

LOCK = (
    "# lock\n"
    "scikit-learn==1.5.0 \\\n    --hash=sha256:" + "1" * 64 + "\n"
    "six==1.16.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"
)
BUILT_LAYERS = ["sha256:" + "a" * 64, "sha256:" + "b" * 64]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sbom_for(packages: dict[str, str]) -> bytes:
    components = [{"type": "library", "name": name, "version": version} for name, version in packages.items()]
    document = {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": components}
    return json.dumps(document, indent=2).encode()


@dataclass
class FakeImage:
    """An image as `mlship build` would make it from a staged context: files under /app, labels, layers."""

    files: dict[str, bytes]
    image_labels: dict[str, str]
    image_layers: list[str] = field(default_factory=lambda: list(BUILT_LAYERS))
    steps: list[tuple[str, int]] = field(default_factory=list)

    def labels(self) -> dict[str, str]:
        return dict(self.image_labels)

    def tree(self) -> dict[str, Entry]:
        entries = {path: Entry(path, "file", sha(content), content) for path, content in self.files.items()}
        for path in list(entries):
            parent = path.rsplit("/", 1)[0]
            while parent.startswith("/app") and parent not in entries:
                entries[parent] = Entry(parent, "dir")
                parent = parent.rsplit("/", 1)[0]
        return entries

    def layers(self) -> list[str]:
        return list(self.image_layers)

    def history(self) -> list[tuple[str, int]]:
        return list(self.steps)

    def write(self, path: str, content: bytes) -> None:
        self.files[path] = content


@pytest.fixture
def built(tmp_path: Path) -> FakeImage:
    """The fake image of the light project, exactly as built."""
    root = write_light_project(tmp_path / "project")
    (root / "requirements.lock.txt").write_text(LOCK)
    lock = FreezeResult(
        lock_path=root / "requirements.lock.txt",
        sha256=sha256_file(root / "requirements.lock.txt"),
        python="3.11",
        resolved_with="3.11",
        reused=False,
        packages=["scikit-learn==1.5.0", "six==1.16.0"],
        seconds=0.0,
    )
    staged = stage_context(load_project(root), lock, tmp_path / "context", base_image="python:3.11-slim")
    files = {
        f"/app/{image_path(path.relative_to(staged.directory).as_posix())}": path.read_bytes()
        for path in staged.directory.rglob("*")
        if path.is_file() and path.name not in {"Dockerfile", ".dockerignore"}
    }
    files["/app/sbom.cdx.json"] = sbom_for({"scikit_learn": "1.5.0", "six": "1.16.0"})
    labels = {
        **staged.labels,
        LABEL_SBOM_SHA256: sha(files["/app/sbom.cdx.json"]),
        LABEL_LAYERS_SHA256: layers_sha256(BUILT_LAYERS),
    }
    return FakeImage(files=files, image_labels=labels)


def verify(image: FakeImage) -> Any:
    return verify_image("fraud-detector:v3", source=image)


def first_failure(image: FakeImage) -> tuple[str, str, str]:
    report = verify(image)
    assert not report.ok and report.exit_code == 7
    failed = next(check for check in report.checks if not check.ok)
    assert report.error == f"fraud-detector:v3: {failed.path}: {failed.detail}"
    return failed.name, failed.path, failed.detail


def test_the_image_as_built_passes_every_check(built: FakeImage) -> None:
    report = verify(built)
    assert report.ok, report.error
    assert report.exit_code == 0 and report.error is None
    assert [check.name for check in report.checks] == [
        "model", "schema", "requirements", "sbom", "sbom-lock", "files", "trust", "layers",
    ]  # fmt: skip
    assert all(check.ok for check in report.checks)
    listed = next(check for check in report.checks if check.name == "files")
    assert listed.detail == f"{len(built.files) - 2} files"  # all but the SBOM and the manifest itself
    report.raise_for_failure()  # nothing to raise


def test_a_replaced_model_artefact_is_named(built: FakeImage) -> None:
    built.write("/app/project/model/threshold.txt", b"5\n")
    name, path, detail = first_failure(built)
    assert (name, path) == ("model", "/app/project/model/threshold.txt")
    assert "differs from" in detail and "dev.mlship.model.sha256" in detail
    with pytest.raises(VerificationFailed) as caught:
        verify(built).raise_for_failure()
    assert caught.value.exit_code == 7 and "/app/project/model/threshold.txt" in caught.value.message


def test_an_added_or_removed_artefact_is_named(built: FakeImage) -> None:
    built.write("/app/project/model/extra.pkl", b"\x80\x04.")
    assert first_failure(built)[:2] == ("model", "/app/project/model/extra.pkl")
    assert "added after the build" in first_failure(built)[2]
    del built.files["/app/project/model/extra.pkl"]
    del built.files["/app/project/model/threshold.txt"]
    assert first_failure(built)[1:] == (
        "/app/project/model/threshold.txt",
        "missing, but the build recorded it",
    )


@pytest.mark.parametrize(
    ("path", "check"),
    [
        ("/app/project/schema.json", "schema"),
        ("/app/requirements.txt", "requirements"),
        ("/app/sbom.cdx.json", "sbom"),
        ("/app/project/solution.py", "files"),
        ("/app/mlship_serving/loading.py", "files"),
        ("/app/project/service.json", "files"),
        ("/app/project/artifact-trust.json", "files"),
    ],
)
def test_each_changed_file_is_named_by_its_check(built: FakeImage, path: str, check: str) -> None:
    built.write(path, built.files[path] + b"\n")
    name, named, detail = first_failure(built)
    assert (name, named) == (check, path)
    assert "differs from" in detail


def test_a_file_added_anywhere_under_app_is_named(built: FakeImage) -> None:
    built.write("/app/mlship_serving/sitecustomize.py", b"import os\n")
    name, path, detail = first_failure(built)
    assert (name, path) == ("files", "/app/mlship_serving/sitecustomize.py")
    assert detail == "added after the build (mlship-files.sha256 does not list it)"


def test_an_sbom_that_does_not_list_the_lock_is_named_even_with_a_matching_hash(built: FakeImage) -> None:
    built.write("/app/sbom.cdx.json", sbom_for({"scikit-learn": "1.5.0", "six": "1.16.0", "requests": "2.0"}))
    built.image_labels[LABEL_SBOM_SHA256] = sha(built.files["/app/sbom.cdx.json"])
    name, path, detail = first_failure(built)
    assert (name, path) == ("sbom-lock", "/app/sbom.cdx.json")
    assert detail == "lists requests 2.0, which the lock (/app/requirements.txt) does not pin"


def test_compare_packages_normalises_names_and_names_what_differs() -> None:
    locked = {"scikit-learn": "1.5.0", "six": "1.16.0"}
    assert compare_packages({"scikit-learn": "1.5.0", "six": "1.16.0"}, locked) == ""
    assert (
        compare_packages({"scikit-learn": "1.5.0"}, locked) == "does not list six 1.16.0, which the lock pins"
    )
    assert compare_packages({"scikit-learn": "1.4.2", "six": "1.16.0"}, locked) == (
        "lists scikit-learn 1.4.2, but the lock pins 1.5.0"
    )


def test_a_layer_added_on_top_is_named_by_its_step(built: FakeImage) -> None:
    built.image_layers.append("sha256:" + "c" * 64)
    built.steps = [
        ('/bin/sh -c #(nop) LABEL "x"="y"', 0),
        ("/bin/sh -c /opt/venv/bin/python -m pip install requests", 4_000_000),
        ("/bin/sh -c #(nop) COPY file:abc in /app/", 100),
    ]
    name, path, detail = first_failure(built)
    assert (name, path) == ("layers", "(layers)")
    assert detail == "1 layer added on top of the 2 built: `/opt/venv/bin/python -m pip install requests`"
    built.image_layers = ["sha256:" + "d" * 64]
    assert "the image's 1 layers are not those mlship built" in first_failure(built)[2]


def test_a_missing_label_is_named(built: FakeImage) -> None:
    del built.image_labels["dev.mlship.model.sha256"]
    name, _, detail = first_failure(built)
    assert name == "model" and "has no label dev.mlship.model.sha256" in detail


def test_the_trust_record_must_match_the_format_and_trusted_types_labels(built: FakeImage) -> None:
    tree = built.tree()
    labels = built.labels()
    assert check_trust(labels, tree).ok
    assert (
        "says format 'joblib', but label dev.mlship.model.format says 'skops'"
        in check_trust({**labels, LABEL_MODEL_FORMAT: "skops"}, tree).detail
    )
    record = {"format": "skops", "trusted_types": {"model/model.skops": ["x.Evil"]}}
    tree["/app/project/artifact-trust.json"] = Entry("", "file", "0" * 64, json.dumps(record).encode())
    skops_labels = {
        **labels,
        LABEL_MODEL_FORMAT: "skops",
        LABEL_MODEL_TRUSTED_TYPES: '{"model/model.skops":[]}',
    }
    failed = check_trust(skops_labels, tree)
    assert not failed.ok and failed.label == LABEL_MODEL_TRUSTED_TYPES and "x.Evil" in failed.detail
    skops_labels[LABEL_MODEL_TRUSTED_TYPES] = '{"model/model.skops":["x.Evil"]}'
    assert check_trust(skops_labels, tree).ok


# --- the image reference, and the command ---


def test_a_missing_local_image_is_a_usage_error_and_a_registry_one_is_pulled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlship.adapters import engine as image

    pulled: list[str] = []
    monkeypatch.setattr(image, "exists", lambda ref: False)
    monkeypatch.setattr(image, "pull", lambda ref: pulled.append(ref) or "sha256:x")
    with pytest.raises(UsageError, match="image fraud:v1 is not in the container engine"):
        EngineImage.open("fraud:v1")
    with pytest.raises(UsageError):
        EngineImage.open("127.0.0.1:5000/fraud:v1", pull=False)
    assert EngineImage.open("127.0.0.1:5000/fraud:v1").ref == "127.0.0.1:5000/fraud:v1"
    assert pulled == ["127.0.0.1:5000/fraud:v1"]


@pytest.fixture
def use(monkeypatch: pytest.MonkeyPatch) -> Callable[[FakeImage], None]:
    def install(fake: FakeImage) -> None:
        monkeypatch.setattr(EngineImage, "open", classmethod(lambda cls, ref, pull=True: fake))

    return install


def test_the_command_exits_0_on_a_faithful_image(built: FakeImage, use: Callable[[FakeImage], None]) -> None:
    use(built)
    result = CliRunner().invoke(app, ["verify", "fraud-detector:v3"])
    assert result.exit_code == 0, result.output
    assert "verified" in result.output


def test_the_command_exits_7_naming_the_file_and_json_lists_every_check(
    built: FakeImage, use: Callable[[FakeImage], None]
) -> None:
    built.write("/app/project/model/threshold.txt", b"5\n")
    use(built)
    result = CliRunner().invoke(app, ["verify", "fraud-detector:v3"])
    assert result.exit_code == 7
    assert "error: fraud-detector:v3: /app/project/model/threshold.txt: sha256" in " ".join(
        result.output.split()
    )
    result = CliRunner().invoke(app, ["verify", "fraud-detector:v3", "--json"])
    assert result.exit_code == 7
    payload = json.loads(result.stdout)
    assert payload["ok"] is False and payload["exit_code"] == 7
    assert payload["error"].startswith("fraud-detector:v3: /app/project/model/threshold.txt: sha256")
    assert {check["name"]: check["ok"] for check in payload["checks"]}["schema"] is True


def test_the_help_states_the_exit_codes() -> None:
    result = CliRunner().invoke(app, ["verify", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "7 a file, package or layer differs (named)" in text and "without running anything" in text
