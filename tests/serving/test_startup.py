"""Start-up: settings, artifact hashes, broken projects — each refused with one line naming the file."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlship.serving import ServiceInfo, ServiceSettings, SettingsError, StartupError, create_app
from mlship.serving.settings import MAX_AUTO_WORKERS, usable_cpus

from .conftest import MARKED_AMOUNT, ROW

SERVING_DIR = Path(__file__).resolve().parents[2] / "src" / "mlship" / "serving"


# --- settings ---


def test_settings_defaults_and_fields_match_mlship_yaml_serving() -> None:
    from mlship.project.config import Serving

    defaults = Serving().model_dump()
    assert ServiceSettings.default().to_dict() == defaults
    assert ServiceSettings.from_dict(defaults) == ServiceSettings.default()


def test_settings_from_file_reads_the_serving_section(tmp_path: Path) -> None:
    (tmp_path / "service.json").write_text(
        json.dumps(
            {
                "name": "x",
                "version": "v2",
                "serving": {"port": 9000, "workers": 2, "batching": {"max_size": 8, "max_wait_ms": 0.5}},
            }
        )
    )
    settings = ServiceSettings.from_file(tmp_path / "service.json")
    assert (settings.port, settings.workers, settings.batching.max_size) == (9000, 2, 8)
    assert settings.max_body_mb == 10.0


def test_workers_default_to_one_per_usable_core(tmp_path: Path) -> None:
    assert ServiceSettings.default().workers == "auto"
    assert ServiceSettings.from_dict({"workers": "auto"}).worker_count == min(usable_cpus(), MAX_AUTO_WORKERS)
    assert ServiceSettings.from_dict({"workers": 3}).worker_count == 3
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # a container limited to 1.5 cores
    assert usable_cpus(tmp_path) == min(len(os.sched_getaffinity(0)), 2)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert usable_cpus(tmp_path) == len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")  # cgroup v1, half a core
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cpus(tmp_path) == 1


@pytest.mark.parametrize(
    ("serving", "fragment"),
    [
        ({"port": 0}, "serving.port: must be >= 1"),
        ({"workers": "many"}, 'or "auto": one per core'),
        ({"workers": "2"}, "serving.workers: expected an integer"),
        ({"timeout_s": 0}, "serving.timeout_s: must be > 0"),
        ({"batching": {"max_size": 0}}, "serving.batching.max_size"),
        ({"log_inputs": "yes"}, "serving.log_inputs"),
        ({"max_concurency": 3}, "unknown field(s) max_concurency"),
    ],
)
def test_bad_settings_name_the_field(serving: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SettingsError) as caught:
        ServiceSettings.from_dict(serving)
    assert fragment in str(caught.value)


def test_service_json_is_validated(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="artifact_sha256"):
        ServiceInfo.from_dict({"artifact_sha256": {"model/m.joblib": "abc"}})
    with pytest.raises(SettingsError, match="version"):
        ServiceInfo.from_dict({"version": ""})
    (tmp_path / "service.json").write_text("{not json")
    with pytest.raises(SettingsError, match="cannot be read as JSON"):
        ServiceInfo.from_file(tmp_path / "service.json")
    assert ServiceInfo.for_project(tmp_path / "nowhere").name == "nowhere"


# --- refusing to start ---


def start(project: Path) -> tuple[str, list[str], list[dict[str, Any]]]:
    """Start the app with the model loaded up front; return the error, on_fatal calls and log lines."""
    from starlette.testclient import TestClient

    log = io.StringIO()
    fatal: list[str] = []
    with pytest.raises(StartupError) as caught:
        app = create_app(project, wait_for_model=True, log_stream=log, on_fatal=fatal.append)
        with TestClient(app):
            pass
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    return str(caught.value), fatal, lines


def rehash(project: Path) -> None:
    import hashlib

    service = json.loads((project / "service.json").read_text())
    service["artifact_sha256"] = {
        f"model/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest() for p in (project / "model").iterdir()
    }
    (project / "service.json").write_text(json.dumps(service))


def test_an_artifact_whose_hash_differs_is_refused_before_it_is_loaded(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    import os
    import pickle

    project = make_project()
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    (project / "model" / "model.joblib").write_bytes(pickle.dumps(Exploit()))
    message, fatal, lines = start(project)
    assert "artifact model/model.joblib: sha256" in message and "differs" in message
    assert not marker.exists()
    assert fatal == [message]
    assert [line["event"] for line in lines] == ["startup_failed"]
    assert lines[0]["message"] == message


def test_a_missing_or_unrecorded_artifact_is_refused(make_project: Callable[..., Path]) -> None:
    project = make_project()
    (project / "model" / "model.joblib").unlink()
    assert "missing" in start(project)[0]
    project = make_project()
    (project / "model" / "extra.pkl").write_bytes(b"x")
    assert "model/extra.pkl: not recorded" in start(project)[0]


def test_a_corrupt_artifact_is_one_clear_line(make_project: Callable[..., Path]) -> None:
    project = make_project()
    (project / "model" / "model.joblib").write_bytes(b"definitely not a joblib file")
    rehash(project)
    message, _, lines = start(project)
    assert message.startswith("solution.py: Model.load('model/') failed:")
    assert len(lines) == 1 and "\n" not in lines[0]["message"]


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("def broken(:\n", "importing it failed: SyntaxError"),
        ("import not_a_module_anywhere\n", "importing it failed: ModuleNotFoundError"),
        ("class Other:\n    pass\n", "defines no class 'Model'"),
        ("class Model:\n    def load(self, a):\n        pass\n", "no predict"),
    ],
)
def test_a_broken_solution_is_refused(make_project: Callable[..., Path], source: str, fragment: str) -> None:
    project = make_project()
    (project / "solution.py").write_text(source)
    assert fragment in start(project)[0]


def test_a_failing_self_test_keeps_the_service_from_ready(make_project: Callable[..., Path]) -> None:
    message = start(make_project(example={**ROW, "amount": MARKED_AMOUNT}))[0]
    assert message.startswith("self-test prediction on the example row failed: ValueError")
    message = start(make_project(example={**ROW, "amount": "high"}))[0]
    assert "example row does not satisfy schema.json" in message


def test_broken_schema_or_service_json_fail_create_app(make_project: Callable[..., Path]) -> None:
    project = make_project()
    (project / "schema.json").write_text('{"columns": [{"name": "a", "type": "decimal"}]}')
    with pytest.raises(StartupError, match=r"schema.json columns\[0\] \('a'\).type"):
        create_app(project)
    (project / "schema.json").unlink()
    with pytest.raises(StartupError, match="schema.json: not found"):
        create_app(project)
    project = make_project()
    (project / "service.json").write_text('{"serving": {"port": "x"}}')
    with pytest.raises(StartupError, match="serving.port"):
        create_app(project)


def test_a_background_load_failure_shows_in_ready(make_project: Callable[..., Path]) -> None:
    from starlette.testclient import TestClient

    project = make_project()
    (project / "model" / "model.joblib").write_bytes(b"corrupt")
    fatal: list[str] = []
    with TestClient(create_app(project, on_fatal=fatal.append, log_stream=io.StringIO())) as client:
        import time

        deadline = time.monotonic() + 10
        while not fatal and time.monotonic() < deadline:
            time.sleep(0.02)
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["status"] == "failed" and "differs" in ready.json()["detail"]
        assert client.post("/predict", json=ROW).status_code == 503


# --- the runtime stands alone ---


def test_the_runtime_imports_nothing_from_mlship() -> None:
    import ast

    for path in SERVING_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            assert not [n for n in names if n == "mlship" or n.startswith("mlship.")], (path.name, names)


def test_the_runtime_works_copied_as_mlship_serving(
    tmp_path: Path, make_project: Callable[..., Path]
) -> None:
    import shutil

    shutil.copytree(
        SERVING_DIR, tmp_path / "site" / "mlship_serving", ignore=shutil.ignore_patterns("__pycache__")
    )
    project = make_project()
    code = f"""
import sys
from starlette.testclient import TestClient
import mlship_serving
app = mlship_serving.create_app({str(project)!r}, wait_for_model=True)
with TestClient(app) as client:
    assert client.post("/predict", json={ROW!r}).status_code == 200
assert not any(name == "mlship" or name.startswith("mlship.") for name in sys.modules), "imported mlship"
print("standalone ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path / "site",
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path / "site")},
        timeout=120,
    )
    assert "standalone ok" in result.stdout, result.stderr
    requirements = (SERVING_DIR / "requirements.txt").read_text()
    for name in (
        "starlette",
        "uvicorn",
        "orjson",
        "prometheus-client",
        "pandas",
        "numpy",
        "swagger-ui-bundle",
    ):
        assert f"{name}>=" in requirements


def test_service_info_round_trips_through_json() -> None:
    info = ServiceInfo.from_dict(
        {
            "name": "n",
            "version": "v3",
            "artifact_sha256": {"model/a": "0" * 64},
            "serving": {"workers": 2, "batching": {"max_size": 8}},
            "example": ROW,
        }
    )
    assert ServiceInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
