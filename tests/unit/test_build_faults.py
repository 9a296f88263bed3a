"""Faults while building or running, against fake engines: a full disk (on this machine or in the engine)
is BuildFailed (exit 7) naming it with what to free; a container whose creation is interrupted is removed.

The real thing (a small tmpfs as TMPDIR, the engine killed, Ctrl-C during a deploy) is in
tests/integration/test_deploy_hardening.py.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mlship.adapters import engine as image
from mlship.cli import _common
from mlship.errors import BuildFailed, ExitCode
from tests.unit.test_image import FakeEngine, _context, engine, engines, isolated_discovery

__all__ = ["engine", "engines", "isolated_discovery"]  # fixtures shared with test_image.py


def test_the_engine_running_out_of_space_says_so_with_what_to_free(
    tmp_path: Path, engine: FakeEngine
) -> None:
    engine.build_stream = [
        {"stream": "STEP 1/2: FROM localhost/pybase:bookworm\n"},
        {"stream": "STEP 2/2: RUN pip install -r requirements.txt\n"},
        {"error": "writing blob: write /var/lib/containers/storage/x: no space left on device"},
    ]
    with pytest.raises(BuildFailed) as caught:
        image.build(_context(tmp_path), "localhost/m:1")
    assert caught.value.exit_code == ExitCode.BUILD_FAILED == 7
    assert "no space left on device" in caught.value.message
    assert "the engine's storage is full" in (caught.value.hint or "")
    assert "docker system prune" in (caught.value.hint or "")


def test_packing_the_context_on_a_full_disk_is_exit_7_naming_the_temporary_folder(
    tmp_path: Path, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import docker.utils

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(docker.utils, "tar", full)  # the SDK packs the context into a temporary file
    small = tmp_path / "small-disk"
    small.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(small))
    with pytest.raises(BuildFailed) as caught:
        image.build(_context(tmp_path), "localhost/m:1")
    assert caught.value.message == (
        f"no space left on device while building localhost/m:1 (temporary files go to {small})"
    )
    assert "TMPDIR" in (caught.value.hint or "")
    assert not [path for _, path, _ in engine.requests if "/build" in path]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_the_error_boundary_names_a_full_disk_wherever_it_struck(code: int) -> None:
    @_common.boundary
    def command(as_json: bool = True) -> None:
        try:
            raise OSError(code, "full", "/data/in.csv", None, "/tmp/out/copy.csv")
        except OSError as error:
            raise RuntimeError("copying failed") from error  # found through the cause

    import typer

    app = typer.Typer()
    app.command()(command)
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 7
    payload = json.loads(result.stdout)
    assert payload["error"] == "no space left on device writing /tmp/out/copy.csv"
    assert payload["kind"] == "BuildFailed"
    assert "unexpected error" not in result.output and "Traceback" not in result.output


def test_other_os_errors_stay_unexpected_errors() -> None:
    assert image.disk_full(OSError(errno.EACCES, "denied", "/x")) is None
    assert image.disk_full(ValueError("no")) is None


class _Containers:
    """A container collection whose create is interrupted (Ctrl-C) after the engine made the container."""

    def __init__(self) -> None:
        self.created: dict[str, _Container] = {}

    def create(self, ref: str, **options: Any) -> Any:
        self.created[options["name"]] = _Container()
        raise KeyboardInterrupt

    def get(self, name: str) -> _Container:
        return self.created[name]


class _Container:
    removed = False

    def remove(self, force: bool = False) -> None:
        self.removed = force


def test_a_container_whose_creation_is_interrupted_is_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    class Client:
        containers = _Containers()

    monkeypatch.setattr("mlship.adapters.engine.containers.connect", lambda: Client)
    with pytest.raises(KeyboardInterrupt), image.run("localhost/m:1"):
        pytest.fail("the block must not run")
    [(name, container)] = Client.containers.created.items()
    assert name.startswith("mlship-") and container.removed
