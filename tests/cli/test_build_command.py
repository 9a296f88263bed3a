"""`mlship build` through the CLI: exit codes, messages, --json, and what it refuses before touching Docker.

The container engine is replaced by a fake `mlship.adapters.engine` (the integration tests use the real one),
and pip-compile by a fake script (tests/unit/test_deps.py has one real pip-tools test).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mlship.adapters import engine as image
from mlship.cli import app
from mlship.errors import EngineUnavailable
from tests.build_projects import CONFIG, plant_secrets, use_fake_pip_compile, write_light_project

INJECTION = r"x\nRUN touch /pwned"  # as written inside a double-quoted YAML string: a real newline


class FakeEngine:
    """Stands in for the engine: records what build_project hands it."""

    def __init__(self) -> None:
        self.connected = 0
        self.builds: list[dict[str, Any]] = []
        self.broken_sbom = False

    def connect(self) -> object:
        self.connected += 1
        return object()

    def build(self, context_dir: Path, tag: str, **options: Any) -> image.BuiltImage:
        self.builds.append(
            {
                "tag": tag,
                "files": sorted(
                    p.relative_to(context_dir).as_posix() for p in context_dir.rglob("*") if p.is_file()
                ),
                "dockerfile": (context_dir / "Dockerfile").read_text(),
                **options,
            }
        )
        return image.BuiltImage(
            ref=tag, id="sha256:" + "1" * 64, size_bytes=123_000_000, seconds=1.5, layers=9
        )

    def image_labels(self, ref: str) -> dict[str, str]:
        merged = {key: value for build in self.builds for key, value in (build.get("labels") or {}).items()}
        return {**merged, "from-dockerfile": "yes"}

    @contextmanager
    def run(self, ref: str, **options: Any) -> Iterator[Any]:
        sbom = '{"bomFormat": "CycloneDX"}\n'
        broken = self.broken_sbom

        class Container:
            def exit_code(self) -> int | None:
                return 3 if broken else None

            def logs(self, tail: int | None = None) -> str:
                return '{"event": "startup_failed", "message": "model/model.joblib: corrupt"}\n'

            def exec(self, command: list[str]) -> image.ExecResult:
                if broken:
                    return image.ExecResult(126, "container is not running")
                if command[0] == "sha256sum":
                    return image.ExecResult(0, f"{hashlib.sha256(sbom.encode()).hexdigest()}  {command[1]}\n")
                return image.ExecResult(0, sbom)

        yield Container()


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(image, "connect", fake.connect)
    monkeypatch.setattr(image, "build", fake.build)
    monkeypatch.setattr(image, "image_labels", fake.image_labels)
    monkeypatch.setattr(image, "run", fake.run)
    monkeypatch.setattr(image, "exists", lambda ref: True)
    monkeypatch.setattr(image, "image_digest", lambda ref: "sha256:" + "b" * 64, raising=False)
    return fake


@pytest.fixture
def pip_compile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return use_fake_pip_compile(monkeypatch, scratch)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_light_project(tmp_path / "fraud-detector")


def dockerfiles(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.name.startswith("Dockerfile")]


def run(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(app, ["build", *args])


def test_build_prints_the_image_and_writes_lock_dockerfile_and_openapi(
    runner: CliRunner, project: Path, engine: FakeEngine, pip_compile: Path
) -> None:
    result = run(runner, str(project), "--base-image", "localhost/pybase:bookworm")

    assert result.exit_code == 0, result.output
    assert "built fraud-detector:dev" in result.output
    assert "123 MB" in result.output
    assert (project / "requirements.lock.txt").is_file()
    assert (project / ".mlship" / "Dockerfile").read_text() == engine.builds[0]["dockerfile"]
    assert engine.builds[0]["tag"] == "fraud-detector:dev"
    assert "FROM localhost/pybase:bookworm" in engine.builds[0]["dockerfile"]
    assert (
        "# Reproduce: mlship build --base-image localhost/pybase:bookworm" in engine.builds[0]["dockerfile"]
    )


def test_json_output_has_the_build_result(
    runner: CliRunner, project: Path, engine: FakeEngine, pip_compile: Path
) -> None:
    result = run(runner, str(project), "--tag", "fraud-detector:try1", "--no-cache", "--json")

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["image_ref"] == "fraud-detector:try1"
    assert payload["image_id"] == "sha256:" + "1" * 64
    assert payload["digest"] is None
    assert payload["size_bytes"] == 123_000_000
    assert payload["seconds"] > 0
    assert payload["requirements_path"] == str(project / "requirements.lock.txt")
    assert payload["labels"]["from-dockerfile"] == "yes"
    sbom = (project / ".mlship" / "sbom.cdx.json").read_bytes()
    assert payload["labels"]["dev.mlship.sbom.sha256"] == hashlib.sha256(sbom).hexdigest()
    assert payload["sbom_path"] == str(project / ".mlship" / "sbom.cdx.json")
    assert engine.builds[1]["dockerfile"] == f"FROM {'sha256:' + '1' * 64}\n"  # the label stamp
    assert engine.builds[0]["no_cache"] is True


def test_per_build_labels_reach_the_engine(
    runner: CliRunner, project: Path, engine: FakeEngine, pip_compile: Path
) -> None:
    git = ["git", "-C", str(project)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run(
        [*git, "remote", "add", "origin", "https://bot:s3cr3t-token@git.example.com/acme/fraud.git"]
    )
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run(
        [*git, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "x"], check=True
    )
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()

    assert run(runner, str(project)).exit_code == 0

    labels = engine.builds[0]["labels"]
    assert labels["org.opencontainers.image.version"] == "dev"
    assert labels["org.opencontainers.image.revision"] == head
    assert labels["org.opencontainers.image.source"] == "https://git.example.com/acme/fraud.git"
    assert labels["org.opencontainers.image.created"].endswith("Z")
    assert labels["dev.mlship.base.digest"] == "sha256:" + "b" * 64
    assert "s3cr3t" not in json.dumps(labels) + engine.builds[0]["dockerfile"]


def test_planted_secrets_are_not_in_the_context_the_engine_gets(
    runner: CliRunner, project: Path, engine: FakeEngine, pip_compile: Path
) -> None:
    plant_secrets(project)
    assert run(runner, str(project)).exit_code == 0
    files = engine.builds[0]["files"]
    assert "model/threshold.txt" in files
    assert not [f for f in files if f.endswith((".env", ".pem", ".key", "id_rsa")) or ".git/" in f]


def test_the_openapi_document_is_written_and_valid(
    runner: CliRunner, project: Path, engine: FakeEngine, pip_compile: Path
) -> None:
    from openapi_spec_validator import validate

    assert run(runner, str(project)).exit_code == 0
    document = json.loads((project / ".mlship" / "openapi.json").read_text())
    validate(document)
    assert "/predict" in document["paths"]


def test_a_syntax_error_fails_before_freezing_or_docker(
    runner: CliRunner, project: Path, engine: FakeEngine, pip_compile: Path
) -> None:
    (project / "solution.py").write_text("class Model:\n    def load(self, artifacts)\n        pass\n")

    result = run(runner, str(project))

    assert result.exit_code == 7
    assert "solution.py line 2: SyntaxError" in result.output
    assert engine.connected == 0 and not pip_compile.exists()
    assert not dockerfiles(project)


def test_an_unknown_package_fails_with_its_name_before_docker(
    runner: CliRunner, project: Path, engine: FakeEngine, pip_compile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stderr = project.parent / "stderr.txt"
    stderr.write_text(
        "ERROR: Could not find a version that satisfies the requirement sklearnn (from versions: none)\n"
    )
    monkeypatch.setenv("FAKE_PIPTOOLS_MODE", "fail")
    monkeypatch.setenv("FAKE_PIPTOOLS_STDERR", str(stderr))

    result = run(runner, str(project))

    assert result.exit_code == 7
    assert "unknown package 'sklearnn'" in result.output
    assert engine.connected == 0
    assert not dockerfiles(project) and not (project / "requirements.lock.txt").exists()


def test_a_bad_example_row_in_schema_json_fails_before_docker(
    runner: CliRunner, project: Path, engine: FakeEngine, pip_compile: Path
) -> None:
    schema = json.loads((project / "schema.json").read_text())
    schema["example"] = {"amount": 45.0, "channel": "telepathy"}
    (project / "schema.json").write_text(json.dumps(schema))

    result = run(runner, str(project))

    assert result.exit_code == 7
    assert "schema.json example" in result.output and "channel" in result.output
    assert engine.connected == 0


def test_no_engine_is_exit_6_with_what_to_start(
    runner: CliRunner, project: Path, pip_compile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{project}/no-engine.sock")
    image.forget_engine()

    result = run(runner, str(project))

    image.forget_engine()
    assert result.exit_code == 6, result.output
    assert "no container engine answers" in result.output
    assert "podman system service" in result.output


@pytest.mark.parametrize(
    ("image_section", "field"),
    [
        (f'{{base: "{INJECTION}"}}', "image.base"),
        (f'{{registry: "{INJECTION}"}}', "image.registry"),
        (f'{{env: {{A: "{INJECTION}"}}}}', "image.env"),
        (f'{{labels: {{team: "{INJECTION}"}}}}', "image.labels"),
        (f'{{system_packages: ["{INJECTION}"]}}', "image.system_packages"),
        ('{base: "python:3.11-slim AS builder"}', "image.base"),
    ],
)
def test_a_dockerfile_bound_value_that_injects_is_exit_3_and_no_dockerfile(
    runner: CliRunner,
    project: Path,
    engine: FakeEngine,
    pip_compile: Path,
    image_section: str,
    field: str,
) -> None:
    config = CONFIG.replace('image: {registry: "127.0.0.1:5000"}', f"image: {image_section}")
    assert config != CONFIG
    (project / "mlship.yaml").write_text(config)

    result = run(runner, str(project))

    assert result.exit_code == 3, result.output
    assert field in result.output
    assert not dockerfiles(project)
    assert not (project / ".mlship").exists()
    assert engine.connected == 0 and not pip_compile.exists()


@pytest.mark.parametrize(("option", "value"), [("--base-image", "not an image"), ("--tag", "Bad Tag")])
def test_a_bad_image_reference_on_the_command_line_is_exit_2(
    runner: CliRunner, project: Path, engine: FakeEngine, pip_compile: Path, option: str, value: str
) -> None:
    result = run(runner, str(project), option, value)
    assert result.exit_code == 2, result.output
    assert option in result.output
    assert engine.connected == 0


def test_an_engine_that_fails_mid_build_keeps_its_exit_code(
    runner: CliRunner, project: Path, engine: FakeEngine, pip_compile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def gone(*args: Any, **kwargs: Any) -> image.BuiltImage:
        raise EngineUnavailable("the container engine went away while building fraud-detector:dev")

    monkeypatch.setattr(image, "build", gone)
    result = run(runner, str(project), "--json")
    assert result.exit_code == 6
    assert json.loads(result.stdout)["kind"] == "EngineUnavailable"


def test_an_unreadable_sbom_is_exit_7_with_the_containers_log(
    runner: CliRunner, project: Path, engine: FakeEngine, pip_compile: Path
) -> None:
    engine.broken_sbom = True
    result = run(runner, str(project))
    assert result.exit_code == 7
    assert "could not be read from the image; the container stopped with exit code 3" in result.output
    assert "model/model.joblib: corrupt" in result.output
