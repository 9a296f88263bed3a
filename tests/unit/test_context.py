"""stage_context: an allow-listed, hashed build context; secrets planted in the project never reach it."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from mlship.build import context
from mlship.build.context import is_blessed, model_sha256, stage_context
from mlship.build.requirements import FreezeResult, sha256_file
from mlship.errors import BuildFailed
from mlship.project.config import Project, load_project
from tests.build_projects import CONFIG, SECRET_MARKERS, plant_secrets, write_light_project

LOCK = "# lock\nsix==1.16.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"


@pytest.fixture
def fake_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    runtime = tmp_path / "runtime"
    (runtime / "__pycache__").mkdir(parents=True)
    (runtime / "__init__.py").write_text("")
    (runtime / "__main__.py").write_text("print('serving')\n")
    (runtime / "requirements.txt").write_text("starlette\n")
    (runtime / "static").mkdir()
    (runtime / "static" / "swagger.js").write_text("// js\n")
    (runtime / "__pycache__" / "__main__.cpython-311.pyc").write_bytes(b"\0")
    monkeypatch.setattr(context, "runtime_source", lambda: runtime)
    return runtime


def make_project(root: Path, config: str = CONFIG) -> tuple[Project, FreezeResult]:
    write_light_project(root, config)
    (root / "requirements.lock.txt").write_text(LOCK)
    lock = FreezeResult(
        lock_path=root / "requirements.lock.txt",
        sha256=sha256_file(root / "requirements.lock.txt"),
        python="3.11",
        resolved_with="3.11",
        reused=False,
        packages=["six==1.16.0"],
        seconds=0.0,
    )
    return load_project(root), lock


def files_in(directory: Path) -> set[str]:
    return {path.relative_to(directory).as_posix() for path in directory.rglob("*") if path.is_file()}


def test_only_the_allow_list_is_staged(tmp_path: Path, fake_runtime: Path) -> None:
    project, lock = make_project(tmp_path / "project")
    plant_secrets(project.root)
    (project.root / "scratch.ipynb").write_text("{}")

    staged = stage_context(project, lock, tmp_path / "ctx", base_image="python:3.11-slim")

    assert files_in(staged.directory) == {
        "Dockerfile",
        ".dockerignore",
        "requirements.txt",
        "sbom-requirements.txt",
        "schema.json",
        "service.json",
        "artifact-trust.json",
        "mlship-files.sha256",
        "solution.py",
        "model/threshold.txt",
        "mlship_serving/__init__.py",
        "mlship_serving/__main__.py",
        "mlship_serving/requirements.txt",
        "mlship_serving/static/swagger.js",
    }
    assert sorted(staged.left_out) == ["model/.env", "model/signing.pem"]


def test_no_planted_secret_reaches_the_context(tmp_path: Path, fake_runtime: Path) -> None:
    project, lock = make_project(tmp_path / "project")
    plant_secrets(project.root)

    staged = stage_context(project, lock, tmp_path / "ctx", base_image="python:3.11-slim")

    for file in staged.directory.rglob("*"):
        if file.is_file():
            content = file.read_text(errors="replace")
            assert not [marker for marker in SECRET_MARKERS if marker in content], file


def test_staged_files_are_world_readable_and_not_writable_by_others(
    tmp_path: Path, fake_runtime: Path
) -> None:
    project, lock = make_project(tmp_path / "project")
    (project.root / "model" / "threshold.txt").chmod(0o600)

    staged = stage_context(project, lock, tmp_path / "ctx", base_image="python:3.11-slim")

    for path in [staged.directory, *staged.directory.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), path


def test_hashes_are_recorded_in_labels_and_service_json(tmp_path: Path, fake_runtime: Path) -> None:
    project, lock = make_project(tmp_path / "project")
    (project.root / "model" / "nested").mkdir()
    (project.root / "model" / "nested" / "b.bin").write_bytes(bytes(range(256)))

    staged = stage_context(project, lock, tmp_path / "ctx", base_image="python:3.11-slim")

    expected = {
        relative: hashlib.sha256((project.root / relative).read_bytes()).hexdigest()
        for relative in ("model/threshold.txt", "model/nested/b.bin")
    }
    assert staged.artifact_sha256 == expected
    assert staged.service["artifact_sha256"] == expected
    assert staged.labels["dev.mlship.model.sha256"] == staged.model_sha256
    assert staged.labels["dev.mlship.schema.sha256"] == sha256_file(project.root / "schema.json")
    assert staged.labels["dev.mlship.requirements.sha256"] == lock.sha256 == staged.requirements_sha256
    assert staged.labels["org.opencontainers.image.title"] == "fraud-detector"
    assert staged.labels["dev.mlship.base.image"] == "python:3.11-slim"
    assert 'dev.mlship.model.sha256="' + staged.model_sha256 + '"' in staged.dockerfile


def test_the_model_hash_is_the_documented_sha256sum_pipeline(tmp_path: Path, fake_runtime: Path) -> None:
    project, lock = make_project(tmp_path / "project")
    (project.root / "model" / "Zeta.bin").write_bytes(b"z")
    (project.root / "model" / "a b.bin").write_bytes(b"space")

    staged = stage_context(project, lock, tmp_path / "ctx", base_image="python:3.11-slim")

    shell = subprocess.run(
        "find model -type f | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum",
        shell=True,
        cwd=staged.directory,
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout.split()[0] == staged.model_sha256


def test_service_json_is_what_the_serving_runtime_reads(tmp_path: Path, fake_runtime: Path) -> None:
    from mlship.serving.settings import ServiceInfo

    config = CONFIG.replace(
        "serving: {port: 8080, workers: 1}", "serving: {port: 9000, workers: 3, timeout_s: 2}"
    )
    project, lock = make_project(tmp_path / "project", config)

    staged = stage_context(project, lock, tmp_path / "ctx", base_image="python:3.11-slim", version="v7")

    info = ServiceInfo.from_file(staged.directory / "service.json")
    assert (info.name, info.version, info.solution, info.schema) == (
        "fraud-detector",
        "v7",
        "solution.py",
        "schema.json",
    )
    assert (info.serving.port, info.serving.workers, info.serving.timeout_s) == (9000, 3, 2.0)
    assert info.example == {"amount": 45.0, "channel": "web"}
    assert (staged.directory / info.artifacts).is_dir()
    for relative, digest in info.artifact_sha256.items():
        assert sha256_file(staged.directory / relative) == digest


def test_a_single_file_artefact(tmp_path: Path, fake_runtime: Path) -> None:
    config = CONFIG.replace("artifacts: model/", "artifacts: model/threshold.txt")
    project, lock = make_project(tmp_path / "project", config)

    staged = stage_context(project, lock, tmp_path / "ctx", base_image="python:3.11-slim")

    assert staged.service["artifacts"] == "model/threshold.txt"
    assert list(staged.artifact_sha256) == ["model/threshold.txt"]
    assert 'COPY ["model/threshold.txt", "/app/project/model/threshold.txt"]' in staged.dockerfile


def test_local_modules_are_staged_next_to_the_solution(tmp_path: Path, fake_runtime: Path) -> None:
    project, lock = make_project(tmp_path / "project")
    (project.root / "features.py").write_text("X = 1\n")

    staged = stage_context(
        project, lock, tmp_path / "ctx", base_image="python:3.11-slim", local_modules=["features.py"]
    )

    assert (staged.directory / "features.py").read_text() == "X = 1\n"
    assert 'COPY ["features.py", "/app/project/features.py"]' in staged.dockerfile


def test_a_link_out_of_the_project_is_refused(tmp_path: Path, fake_runtime: Path) -> None:
    project, lock = make_project(tmp_path / "project")
    outside = tmp_path / "outside-secret.txt"
    outside.write_text("not yours")
    os.symlink(outside, project.root / "model" / "link.txt")

    with pytest.raises(BuildFailed, match="model/link.txt is a link to .*outside the project folder"):
        stage_context(project, lock, tmp_path / "ctx", base_image="python:3.11-slim")


def test_a_link_inside_the_project_is_copied_as_a_file(tmp_path: Path, fake_runtime: Path) -> None:
    project, lock = make_project(tmp_path / "project")
    (project.root / "weights").mkdir()
    (project.root / "weights" / "w.bin").write_bytes(b"w")
    os.symlink(project.root / "weights" / "w.bin", project.root / "model" / "w.bin")

    staged = stage_context(project, lock, tmp_path / "ctx", base_image="python:3.11-slim")

    copied = staged.directory / "model" / "w.bin"
    assert copied.is_file() and not copied.is_symlink() and copied.read_bytes() == b"w"


def test_an_empty_artefacts_folder_is_refused(tmp_path: Path, fake_runtime: Path) -> None:
    project, lock = make_project(tmp_path / "project")
    (project.root / "model" / "threshold.txt").unlink()

    with pytest.raises(BuildFailed, match="model.artifacts: 'model/' holds no files"):
        stage_context(project, lock, tmp_path / "ctx", base_image="python:3.11-slim")


def test_the_runtime_is_staged_without_bytecode(tmp_path: Path, fake_runtime: Path) -> None:
    project, lock = make_project(tmp_path / "project")
    staged = stage_context(project, lock, tmp_path / "ctx", base_image="python:3.11-slim")
    assert not list((staged.directory / "mlship_serving").rglob("*.pyc"))
    assert (staged.directory / "mlship_serving" / "__main__.py").read_text() == "print('serving')\n"


def test_a_non_empty_context_folder_is_refused(tmp_path: Path, fake_runtime: Path) -> None:
    project, lock = make_project(tmp_path / "project")
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "leftover").write_text("x")
    with pytest.raises(BuildFailed, match="not empty"):
        stage_context(project, lock, tmp_path / "ctx", base_image="python:3.11-slim")


def test_user_labels_and_env_reach_the_dockerfile(tmp_path: Path, fake_runtime: Path) -> None:
    config = CONFIG.replace(
        'image: {registry: "127.0.0.1:5000"}',
        'image: {registry: "127.0.0.1:5000", env: {OMP_NUM_THREADS: "1"}, labels: {team: payments},'
        " system_packages: [libgomp1]}",
    )
    project, lock = make_project(tmp_path / "project", config)

    staged = stage_context(project, lock, tmp_path / "ctx", base_image="python:3.11-slim")

    assert staged.labels["team"] == "payments"
    assert 'ENV OMP_NUM_THREADS="1"' in staged.dockerfile
    assert "apt-get install -y --no-install-recommends libgomp1" in staged.dockerfile


def test_the_real_runtime_folder_is_a_package_with_its_requirements() -> None:
    runtime = context.runtime_source()
    assert (runtime / "__main__.py").is_file(), "the serving runtime must run as `python -m mlship_serving`"
    assert (runtime / "requirements.txt").is_file()


def test_service_json_carries_the_fallback_section_without_its_thresholds(
    tmp_path: Path, fake_runtime: Path
) -> None:
    from mlship.serving.settings import ServiceInfo

    config = CONFIG + "fallback: {model: Spare, deadline_ms: 120, metrics: {f1: {min: 0.5}}}\n"
    project, lock = make_project(tmp_path / "project", config)

    staged = stage_context(project, lock, tmp_path / "ctx", base_image="python:3.11-slim", version="v7")

    info = ServiceInfo.from_file(staged.directory / "service.json")
    assert info.fallback is not None
    assert (info.fallback.model, info.fallback.deadline_ms) == ("Spare", 120.0)
    written = json.loads((staged.directory / "service.json").read_text())["fallback"]
    assert "metrics" not in written and written["model"] == "Spare"


def test_a_blessing_of_exactly_these_artefacts_is_carried_as_a_label(
    tmp_path: Path, fake_runtime: Path
) -> None:
    import json

    project, lock = make_project(tmp_path / "project")
    staged = stage_context(project, lock, tmp_path / "ctx0", base_image="python:3.11-slim")
    assert "dev.mlship.blessing" not in staged.labels
    record = {
        "blessed": True,
        "artifacts_sha256": staged.model_sha256,
        "data_sha256": "d" * 64,
        "champion": {"version": "v3", "digest": "sha256:abc"},
        "challenger": [{"name": "f1", "value": 0.9}],
    }
    (project.root / "blessing.json").write_text(json.dumps(record))
    blessed = stage_context(project, lock, tmp_path / "ctx1", base_image="python:3.11-slim")
    label = json.loads(blessed.labels["dev.mlship.blessing"])
    assert label["champion"] == {"version": "v3", "digest": "sha256:abc"} and label["metrics"] == {"f1": 0.9}
    assert label["sha256"] == hashlib.sha256((project.root / "blessing.json").read_bytes()).hexdigest()
    (project.root / "model" / "threshold.txt").write_text("0.7")  # the model changed since the blessing
    stale = stage_context(project, lock, tmp_path / "ctx2", base_image="python:3.11-slim")
    assert "dev.mlship.blessing" not in stale.labels
    assert not is_blessed(project)  # what `deploy --canary` checks before building, from the same hashes


def test_is_blessed_names_the_artefacts_a_build_would_label(tmp_path: Path, fake_runtime: Path) -> None:
    import json

    project, lock = make_project(tmp_path / "project")
    assert not is_blessed(project)
    staged = stage_context(project, lock, tmp_path / "ctx", base_image="python:3.11-slim")
    assert model_sha256(project) == staged.model_sha256
    record = {"blessed": True, "artifacts_sha256": staged.model_sha256}
    (project.root / "blessing.json").write_text(json.dumps(record))
    assert is_blessed(project)
    (project.root / "blessing.json").write_text(json.dumps({**record, "blessed": False}))
    assert not is_blessed(project)
