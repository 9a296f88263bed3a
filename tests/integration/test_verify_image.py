"""`mlship verify` on the real engine: a freshly built image passes (also after a registry round trip);
images derived from it fail, naming what changed: a replaced model artefact, a package pip-installed into
/opt/venv."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlship.adapters import engine as image
from mlship.build.assemble import BuildResult, build_project
from mlship.release.verify_image import verify_image

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, init_project: Callable[[str, Path], Path]) -> Path:
    return init_project("verify-me", tmp_path_factory.mktemp("verify") / "verify-me")


@pytest.fixture(scope="module")
def built(project: Path, base_image: str) -> Iterator[BuildResult]:
    result = build_project(project, tag=f"mlship-test-verify:{uuid.uuid4().hex[:8]}", base_image=base_image)
    print(f"\nbuild: {result.seconds:.1f} s")
    yield result
    image.remove(result.image_ref)


@pytest.fixture
def derive(tmp_path: Path) -> Iterator[object]:
    """derive(base_id, instructions, files) builds `FROM base_id` + instructions with `files` in the
    context, through mlship.adapters.engine.build; the images are removed afterwards."""
    made: list[str] = []

    def build(base: str, instructions: list[str], files: dict[str, bytes]) -> str:
        context = tmp_path / f"derived-{len(made)}"
        context.mkdir()
        for name, content in files.items():
            (context / name).write_bytes(content)
        (context / "Dockerfile").write_text("\n".join([f"FROM {base}", *instructions]) + "\n")
        ref = f"mlship-test-derived:{uuid.uuid4().hex[:8]}"
        made.append(ref)
        return image.build(context, ref).ref

    yield build
    for ref in made:
        if image.exists(ref):
            image.remove(ref)


def mlship(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlship", *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_verify_passes_on_a_freshly_built_image(built: BuildResult) -> None:
    report = verify_image(built.image_ref)
    print(f"\nverify: {report.files_checked} files in {report.seconds:.2f} s")
    assert report.ok, report.error
    assert [check.name for check in report.checks if check.ok] == [
        "model", "schema", "requirements", "sbom", "sbom-lock", "files", "trust", "layers",
    ]  # fmt: skip
    assert report.files_checked > 20
    completed = mlship("verify", built.image_ref, "--json")
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["ok"] is True


def test_verify_reads_the_image_without_leaving_a_container(built: BuildResult) -> None:
    before = {c.id for c in image.connect().containers.list(all=True)}
    assert verify_image(built.image_ref).ok
    assert {c.id for c in image.connect().containers.list(all=True)} - before == set()


def test_a_derived_image_that_replaces_the_model_fails_naming_it(
    built: BuildResult, project: Path, derive: object, tmp_path: Path
) -> None:
    import joblib

    estimator = joblib.load(project / "model" / "model.joblib")
    estimator.steps[-1][1].C = 0.001  # another model, same kind
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    derived = derive(  # type: ignore[operator]
        built.image_id,
        ["COPY other.joblib /app/project/model/model.joblib"],
        {"other.joblib": buffer.getvalue()},
    )
    assert image.image_labels(derived)["dev.mlship.model.sha256"] == built.labels["dev.mlship.model.sha256"]

    report = verify_image(derived)
    assert not report.ok and report.exit_code == 7
    first = next(check for check in report.checks if not check.ok)
    assert (first.name, first.path) == ("model", "/app/project/model/model.joblib")
    assert "differs from" in first.detail
    completed = mlship("verify", derived)
    assert completed.returncode == 7
    assert f"error: {derived}: /app/project/model/model.joblib: sha256" in " ".join(completed.stderr.split())


def wheel(name: str, version: str) -> tuple[str, bytes]:
    """A minimal pure-Python wheel, made here (no index needed)."""
    files = {f"{name}/__init__.py": b"MARKER = 'installed after the build'\n"}
    info = f"{name}-{version}.dist-info"
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: mlship-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )

    def record_hash(data: bytes) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

    record = "".join(f"{path},sha256={record_hash(data)},{len(data)}\n" for path, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return f"{name}-{version}-py3-none-any.whl", buffer.getvalue()


def test_a_derived_image_with_a_package_pip_installed_into_the_venv_fails(
    built: BuildResult, derive: object
) -> None:
    filename, content = wheel("extra_pkg", "1.0")
    derived = derive(  # type: ignore[operator]
        built.image_id,
        [
            "USER root",
            f"COPY {filename} /tmp/",
            # the system's pip (the venv has none), installing into the image's venv
            f"RUN /usr/bin/python3 -m pip --python /opt/venv/bin/python install --no-deps --no-index "
            f"/tmp/{filename}",
            "USER 10001:10001",
        ],
        {filename: content},
    )
    site = "/opt/venv/lib/python3.11/site-packages"
    installed = image.read_files(derived, [f"{site}/extra_pkg-1.0.dist-info/METADATA"])
    assert installed[f"{site}/extra_pkg-1.0.dist-info/METADATA"] is not None  # the package really is there

    report = verify_image(derived)
    assert not report.ok and report.exit_code == 7
    failed = [check for check in report.checks if not check.ok]
    assert [check.name for check in failed] == ["layers"], report.checks  # /app, the SBOM and lock untouched
    assert "2 layers added on top of the" in failed[0].detail
    assert "pip --python /opt/venv/bin/python install --no-deps --no-index /tmp/extra_pkg" in failed[0].detail
    assert report.error is not None and report.error.startswith(f"{derived}: (layers): 2 layers added")


def test_a_released_image_verifies_from_the_registry(
    built: BuildResult, registry_url: str, unique_repo: str
) -> None:
    remote = f"{registry_url}/{unique_repo}:v1"
    image.tag(built.image_ref, remote)
    image.push(remote)
    image.remove(remote)
    assert not image.exists(remote)
    started = time.monotonic()
    try:
        report = verify_image(remote)  # pulled, then read
    finally:
        image.remove(remote)
    print(f"\npull + verify: {time.monotonic() - started:.1f} s")
    assert report.ok, report.error
