"""Render the image's Dockerfile from `templates/Dockerfile.j2` and a typed, validated context.

Every value that reaches the Dockerfile is checked here again (mlship.yaml's own validation is the first
line): a base image must be an image reference, package names Debian names, env and label keys plain
names, and no value may hold a control character (a newline would inject an instruction). Values are
then written as double-quoted Dockerfile strings (`"`, `\\` and `$` escaped) or JSON exec-form arrays.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from mlship.errors import ConfigError, MlshipError, UsageError
from mlship.project.templates import templates_dir

TEMPLATE = "Dockerfile.j2"
SBOM_REQUIREMENTS = "sbom/requirements.txt"  # under templates/: the hashed lock of cyclonedx-bom
SBOM_PATH = "/app/sbom.cdx.json"
PACKAGING_TOOLS = ("pip", "setuptools", "wheel")
RUNTIME_PACKAGE = "mlship_serving"
APP_UID = 10001

# A container image reference: [host[:port]/]path[:tag][@sha256:digest], nothing else.
_IMAGE_REFERENCE = re.compile(
    r"^(?:[A-Za-z0-9][A-Za-z0-9.-]*(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9.+-]*(=[A-Za-z0-9.+:~-]+)?$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PATH = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_. +@=,-]*(?:/[A-Za-z0-9_.][A-Za-z0-9_. +@=,-]*)*$")


@dataclass(frozen=True)
class DockerfileContext:
    """Everything the template needs; `fields` names where each value came from (for error messages).

    Paths (`solution`, `artifacts`, `local_modules`) are relative to the project and the build context,
    in POSIX form; they keep the same place under /app/project in the image.
    """

    base_image: str
    python: str
    port: int
    workers: int | str  # "auto": the runtime counts the container's cores at start
    solution: str
    artifacts: str
    mlship_version: str
    command: str
    labels: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    system_packages: tuple[str, ...] = ()
    local_modules: tuple[str, ...] = ()
    packaging_tools: tuple[str, ...] = ()  # removed from /opt/venv after the install (not in the lock)
    uid: int = APP_UID
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def entrypoint(self) -> list[str]:
        """The exec-form entrypoint: the runtime as PID 1's child (`init: true`), signals reach it."""
        return [
            "/opt/venv/bin/python",
            "-m",
            RUNTIME_PACKAGE,
            "--project",
            "/app/project",
            "--host",
            "0.0.0.0",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]

    def validate(self) -> None:
        """Refuse any value that could change the Dockerfile's structure; ConfigError names the field."""
        check_image_reference(self.base_image, self.fields.get("base_image", "image.base"))
        for tool in self.packaging_tools:
            if not _PACKAGE.match(tool):
                raise ConfigError(f"requirements: {tool!r} is not a package name")
        for package in self.system_packages:
            if not _PACKAGE.match(package):
                raise ConfigError(
                    f"{self.fields.get('system_packages', 'image.system_packages')}: "
                    f"{package!r} is not a Debian package name",
                    hint="write one package per entry, e.g. 'libgomp1' or 'libgomp1=12.2.0-14'",
                )
        _check_mapping(self.env, self.fields.get("env", "image.env"))
        _check_mapping(self.labels, self.fields.get("labels", "image.labels"))
        _single_line(self.command, "command")
        for name, path in (("solution", self.solution), ("artifacts", self.artifacts)):
            _check_path(path, self.fields.get(name, f"model.{name}"))
        for module in self.local_modules:
            _check_path(module, self.fields.get("solution", "model.solution"))
        if not 1 <= self.port <= 65535 or not (self.workers == "auto" or int(self.workers) >= 1):
            raise ConfigError("serving.port / serving.workers: out of range", hint="see mlship.schema.json")


def check_image_reference(value: str, field_name: str) -> None:
    """Refuse anything but an image reference; UsageError for a command-line option, else ConfigError."""
    error: type[MlshipError] = UsageError if field_name.startswith("--") else ConfigError
    if _CONTROL.search(value):
        raise error(
            f"{field_name}: must be a single line without control characters",
            hint="a newline would inject a Dockerfile instruction; remove it",
        )
    if not _IMAGE_REFERENCE.match(value):
        raise error(
            f"{field_name}: '{value}' is not a container image reference",
            hint="use a reference such as 'python:3.11-slim' or 'registry.example.com/team/python:3.11'",
        )


def _single_line(value: str, field_name: str) -> None:
    if _CONTROL.search(value):
        raise ConfigError(
            f"{field_name}: must be a single line without control characters",
            hint="a newline would inject a Dockerfile instruction; remove it",
        )


def _check_mapping(mapping: dict[str, str], field_name: str) -> None:
    for key, value in mapping.items():
        if not _KEY.match(key):
            raise ConfigError(f"{field_name}: '{key}' is not a valid name", hint="use letters, digits, _ . -")
        _single_line(value, f"{field_name}.{key}")


def _check_path(path: str, field_name: str) -> None:
    _single_line(path, field_name)
    if path.startswith("/") or ".." in path.split("/") or not _PATH.match(path):
        raise ConfigError(
            f"{field_name}: '{path}' is not a plain relative path inside the project",
            hint="use letters, digits and . _ - / in file and folder names",
        )


def dockerfile_string(value: object) -> str:
    """A double-quoted Dockerfile string (for ENV and LABEL): `\\`, `"` and `$` escaped, one line only."""
    text = str(value)
    if _CONTROL.search(text):
        raise ValueError("a Dockerfile value must not contain control characters")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def assignments(mapping: dict[str, str], indent: int) -> str:
    """`KEY="value"` pairs, one per line, joined with Dockerfile line continuations."""
    return f" \\\n{' ' * indent}".join(f"{key}={dockerfile_string(value)}" for key, value in mapping.items())


def exec_form(values: Iterable[str]) -> str:
    """A JSON array for exec-form instructions (COPY, ENTRYPOINT): no shell, no variable expansion."""
    items = list(values)
    for item in items:
        if _CONTROL.search(item):
            raise ValueError("a Dockerfile value must not contain control characters")
    return json.dumps(items, ensure_ascii=False)


def render_dockerfile(context: DockerfileContext) -> str:
    """Validate the context and render the Dockerfile (jinja2, StrictUndefined: a missing value fails)."""
    import jinja2

    context.validate()
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - a Dockerfile, not HTML; values are quoted by the filters below
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["dockerfile_string"] = dockerfile_string
    environment.filters["tojson"] = exec_form
    environment.filters["assignments"] = assignments
    template = environment.get_template(TEMPLATE)
    return template.render(
        base_image=context.base_image,
        python=context.python,
        port=context.port,
        uid=context.uid,
        solution=context.solution,
        artifacts=context.artifacts,
        local_modules=list(context.local_modules),
        system_packages=list(context.system_packages),
        packaging_tools=list(context.packaging_tools),
        env=dict(context.env),
        labels=dict(sorted(context.labels.items())),
        mlship_version=context.mlship_version,
        command=context.command,
        entrypoint=context.entrypoint,
    )


DOCKERIGNORE = """\
# Generated by mlship: the build context holds only what mlship staged; these never belong in an image.
**/.env
**/.env.*
**/*.pem
**/*.key
**/id_rsa*
**/id_ed25519*
**/.git
**/.mlship
**/__pycache__
**/*.pyc
**/.ipynb_checkpoints
"""
