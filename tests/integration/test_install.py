"""A non-editable install in a fresh venv finds its templates: `mlship init demo && pytest` passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_fresh_venv_install_then_init_then_pytest(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(ROOT), "pytest"],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    site = subprocess.run(
        [str(python), "-c", "import mlship, pathlib; print(pathlib.Path(mlship.__file__).parent)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert (Path(site) / "templates" / "project" / "cookiecutter.json").is_file()
    assert not str(site).startswith(str(ROOT)), "the package must come from the wheel, not the checkout"

    work = tmp_path / "work"
    work.mkdir()
    init = subprocess.run(
        [str(venv / "bin" / "mlship"), "init", "demo"],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert init.returncode == 0, init.stderr
    tests = subprocess.run(
        [str(python), "-m", "pytest", "-q"],
        cwd=work / "demo",
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " passed" in tests.stdout
