"""`mlship doctor`: is this machine ready to test, build and ship? One check a row, a fix for each failure.

It checks what `mlship test` needs too: pytest, and the project's requirements.in installed here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from mlship.errors import ConfigError, ExitCode, MlshipError
from mlship.project.config import CONFIG_FILE, load_project

Status = Literal["ok", "fail", "skip"]


class Check(BaseModel):
    name: str
    status: Status
    detail: str
    fix: str | None = None


class DoctorReport(BaseModel):
    checks: list[Check]
    ok: bool
    exit_code: int


def _python(expected: str | None) -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if expected and expected != running:
        return Check(
            name="python",
            status="fail",
            detail=f"Python {version}, but mlship.yaml says {expected}",
            fix=f"run mlship from a Python {expected} environment (requirements are frozen per version)",
        )
    return Check(name="python", status="ok", detail=f"Python {version} at {sys.executable}")


def _pip_tools() -> Check:
    if importlib.util.find_spec("piptools") is not None:
        return Check(name="pip-tools", status="ok", detail="importable (used to freeze requirements)")
    return Check(name="pip-tools", status="fail", detail="not installed", fix="pip install pip-tools")


def _pytest() -> Check:
    if importlib.util.find_spec("pytest") is not None:
        return Check(
            name="pytest", status="ok", detail="importable (mlship test runs the project's tests with it)"
        )
    return Check(
        name="pytest",
        status="fail",
        detail=f"not importable from {sys.executable}: mlship test cannot run the project's tests",
        fix="pip install pytest (or reinstall mlship: pip install mlship, which brings it)",
    )


def missing_requirements(requirements_in: Path) -> list[str]:
    """The requirements in requirements.in whose distribution is not installed in this environment."""
    from importlib.metadata import PackageNotFoundError, version

    from mlship.project.requirements import read_requirements_in

    missing = []
    for line, requirement in read_requirements_in(requirements_in):
        if requirement is None:
            missing.append(line)
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            missing.append(line)
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            missing.append(f"{line} (installed: {installed})")
    return missing


def _project_requirements(root: Path) -> Check:
    requirements_in = root / "requirements.in"
    name = "requirements.in"
    if not requirements_in.is_file():
        return Check(name=name, status="skip", detail=f"no {requirements_in}")
    missing = missing_requirements(requirements_in)
    if missing:
        return Check(
            name=name,
            status="fail",
            detail=f"not installed here, so mlship test cannot import the model: {', '.join(missing)}",
            fix=f"pip install -r {requirements_in}",
        )
    return Check(name=name, status="ok", detail="every requirement is installed in this environment")


def _engine() -> Check:
    from mlship.adapters import engine as image

    try:
        info = image.engine_info()
    except MlshipError as error:
        return Check(name="container engine", status="fail", detail=error.message, fix=error.hint)
    return Check(name="container engine", status="ok", detail=str(info))


def _registry(host: str | None) -> Check:
    if not host:
        return Check(
            name="registry", status="skip", detail="no image.registry in mlship.yaml and no --registry"
        )
    from mlship.adapters.registry import Registry

    try:
        Registry(host).tags("mlship-doctor-probe")
    except MlshipError as error:
        return Check(name="registry", status="fail", detail=error.message, fix=error.hint)
    return Check(name="registry", status="ok", detail=f"{host} answers the OCI distribution API")


def run_doctor(project_dir: Path, registry: str | None = None) -> DoctorReport:
    """Run every check; a broken mlship.yaml is reported as a check and makes the exit code 3."""
    checks = []
    exit_code = ExitCode.OK
    expected_python = None
    project_checks: list[Check] = []
    if (project_dir / CONFIG_FILE).is_file():
        try:
            project = load_project(project_dir)
            registry = registry or project.config.image.registry
            expected_python = project.config.python
            checks.append(Check(name=CONFIG_FILE, status="ok", detail=f"valid ({project.config.name})"))
            project_checks.append(_project_requirements(project.root))
        except ConfigError as error:
            checks.append(Check(name=CONFIG_FILE, status="fail", detail=error.message, fix=error.hint))
            exit_code = ExitCode.CONFIG_INVALID
    checks = [
        _python(expected_python),
        _pip_tools(),
        _pytest(),
        *checks,
        *project_checks,
        _engine(),
        _registry(registry),
    ]
    failed = [check for check in checks if check.status == "fail"]
    if failed and exit_code == ExitCode.OK:
        exit_code = ExitCode.NO_ENGINE if failed[0].name == "container engine" else ExitCode.ERROR
    return DoctorReport(checks=checks, ok=not failed, exit_code=int(exit_code))
