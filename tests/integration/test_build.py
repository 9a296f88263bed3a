"""`mlship build` on the real engine, with real pip-tools against the package index.

One project (the `mlship init` template: a scikit-learn model on the breast-cancer data) is built once per
session, with secrets planted in it, a git remote that carries a token, and env/label values full of
characters a Dockerfile would interpret. The tests then run the image and read its layers.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlship.adapters import engine as image
from mlship.build.assemble import BuildResult, build_project
from mlship.build.context import manifest_sha256
from mlship.build.requirements import sha256_file
from tests.build_projects import SECRET_MARKERS, SECRETS, within_schema

from .conftest import TRICKY_ENV, TRICKY_LABEL

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def local_predictions(template_project: Path) -> tuple[list[dict[str, Any]], list[Any], list[list[float]]]:
    """Every test row (without the target), and what the model predicts for them in this process."""
    import pandas as pd

    spec = importlib.util.spec_from_file_location("template_solution", template_project / "solution.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.Model()
    model.load(template_project / "model")
    frame = pd.read_csv(template_project / "data" / "test.csv").drop(columns=["label"])
    rows = json.loads(frame.to_json(orient="records"))
    return rows, [int(v) for v in model.predict(frame)], model.predict_proba(frame).tolist()


@pytest.fixture
def container(built: BuildResult) -> Iterator[image.RunningContainer]:
    with image.run(built.image_ref, read_only=True, tmpfs={"/tmp": "rw,size=64m"}) as running:
        image.wait_ready(running, timeout=120)
        yield running


def test_the_image_carries_every_label(built: BuildResult, template_project: Path, base_image: str) -> None:
    labels = image.image_labels(built.image_ref)
    head = subprocess.run(
        ["git", "-C", str(template_project), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    model_files = sorted(p for p in (template_project / "model").rglob("*") if p.is_file())
    expected_model = manifest_sha256(
        {p.relative_to(template_project).as_posix(): sha256_file(p) for p in model_files if p.name != ".env"
         and not p.name.endswith(".pem")}
    )  # fmt: skip

    assert labels["org.opencontainers.image.title"] == "fraud-detector"
    assert labels["org.opencontainers.image.version"] == "dev"
    assert labels["org.opencontainers.image.revision"] == head
    assert labels["org.opencontainers.image.source"] == "https://git.example.com/acme/fraud.git"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", labels["org.opencontainers.image.created"])
    assert labels["dev.mlship.model.sha256"] == expected_model == built.model_sha256
    assert labels["dev.mlship.schema.sha256"] == sha256_file(template_project / "schema.json")
    assert labels["dev.mlship.requirements.sha256"] == sha256_file(template_project / "requirements.lock.txt")
    assert labels["dev.mlship.base.image"] == base_image
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", labels["dev.mlship.base.digest"])
    assert labels["dev.mlship.python"] == "3.11"
    assert labels["dev.mlship.version"]
    assert labels["team"] == "payments"
    assert labels["note"] == TRICKY_LABEL
    assert "s3cr3t" not in json.dumps(labels)


def test_predictions_in_the_container_equal_the_local_model(
    container: image.RunningContainer,
    local_predictions: tuple[list[dict[str, Any]], list[Any], list[list[float]]],
    template_project: Path,
) -> None:
    rows, labels, probabilities = local_predictions
    schema = json.loads((template_project / "schema.json").read_text())
    accepted = [i for i, row in enumerate(rows) if within_schema(row, schema)]
    refused = sorted(set(range(len(rows))) - set(accepted))
    assert len(accepted) >= 0.9 * len(rows)

    answer = httpx.post(f"{container.url}/predict", json=[rows[i] for i in accepted], timeout=60)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["predictions"] == [labels[i] for i in accepted]
    for served, i in zip(body["probabilities"], accepted, strict=True):
        assert served == pytest.approx(probabilities[i], abs=1e-9)
    for i in refused:  # outside the bounds schema.json enforces: refused by contract, naming the field
        refusal = httpx.post(f"{container.url}/predict", json=rows[i], timeout=10)
        assert refusal.status_code == 422
        assert refusal.json()["details"][0]["field"] in rows[i]


def test_works_with_a_read_only_root_filesystem_as_a_non_root_user(container: image.RunningContainer) -> None:
    # the fixture runs it read-only with a tmpfs /tmp and waited for /health/ready
    assert httpx.get(f"{container.url}/health/ready", timeout=5).status_code == 200
    uid = container.exec(["id", "-u"])
    assert (uid.exit_code, uid.output.strip()) == (0, "10001")
    processes = container.exec(["sh", "-c", "for p in /proc/[0-9]*; do stat -c %u $p; done | sort -u"])
    assert set(processes.output.split()) <= {"10001"}  # every process in the container, PID 1 included
    write = container.exec(["sh", "-c", "touch /app/project/model/x 2>&1 || echo refused"])
    assert "refused" in write.output


def test_env_values_reach_the_container_verbatim(container: image.RunningContainer) -> None:
    greeting = container.exec(["/opt/venv/bin/python", "-c", "import os; print(os.environ['GREETING'])"])
    assert greeting.output.strip() == TRICKY_ENV


def test_the_service_needs_no_network(built: BuildResult) -> None:
    probe = (
        "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8080/health/ready', timeout=2).status)"
    )
    with image.run(built.image_ref, network_disabled=True) as running:
        deadline = time.monotonic() + 120
        output = ""
        while time.monotonic() < deadline and output != "200":
            lines = running.exec(["/opt/venv/bin/python", "-c", probe]).output.strip().splitlines()
            output = lines[-1] if lines else ""
            time.sleep(0.5)
        assert output == "200"


def test_no_planted_secret_is_in_any_layer(built: BuildResult) -> None:
    secret_names = {Path(relative).name for relative in SECRETS}
    for entry in image.save_layers(built.image_ref, with_content=True):
        name = entry.path.rsplit("/", 1)[-1]
        assert not (entry.path.startswith("app/") and name in secret_names), entry.path
        assert not entry.path.startswith(("app/.git", "app/project/.git", "app/project/.env")), entry.path
        if entry.content is not None and entry.path.startswith("app/"):
            text = entry.content.decode("utf-8", "replace")
            assert not [marker for marker in SECRET_MARKERS if marker in text], entry.path


def test_the_dependencies_are_installed_from_hashes(built: BuildResult) -> None:
    dockerfile = built.dockerfile_path.read_text()
    assert "pip install --no-cache-dir --require-hashes --no-deps -r /app/requirements.txt" in dockerfile
    lock = built.requirements_path.read_text()
    assert "--hash=sha256:" in lock and re.search(r"^starlette==", lock, re.MULTILINE)


def locked(built: BuildResult) -> dict[str, str]:
    """{normalised name: version} of the lock the image was built from."""
    pins = re.findall(
        r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", built.requirements_path.read_text(), re.M
    )
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def test_the_python_environment_is_exactly_the_lock(
    container: image.RunningContainer, built: BuildResult
) -> None:
    listing = container.exec(
        ["/opt/venv/bin/python", "-c", "import importlib.metadata as m, json; "
         "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"]
    )  # fmt: skip
    installed = {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in json.loads(listing.output).items()}
    assert installed == locked(built)  # pip and setuptools are gone too: nothing unlocked is left


def test_the_sbom_is_in_the_image_lists_the_lock_and_its_hash_is_labelled(
    container: image.RunningContainer, built: BuildResult
) -> None:
    labels = image.image_labels(built.image_ref)
    inside = container.exec(["sha256sum", "/app/sbom.cdx.json"]).output.split()[0]
    assert labels["dev.mlship.sbom.sha256"] == inside == sha256_file(built.sbom_path)
    sbom = json.loads(built.sbom_path.read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    components = {re.sub(r"[-_.]+", "-", c["name"]).lower(): c["version"] for c in sbom["components"]}
    assert components == locked(built)
    generator = container.exec(["sh", "-c", "ls /tmp/cyclonedx 2>&1; "
                                "/opt/venv/bin/python -c 'import cyclonedx' 2>&1"]).output  # fmt: skip
    assert "No such file" in generator and "ModuleNotFoundError" in generator


def _layers(ref: str) -> list[str]:
    return list(image.connect().images.get(ref).attrs["RootFS"]["Layers"])


def test_a_model_only_change_rebuilds_only_the_last_layers(
    built: BuildResult, template_project: Path, base_image: str
) -> None:
    import joblib

    path = template_project / "model" / "model.joblib"
    original = path.read_bytes()
    try:
        estimator = joblib.load(path)
        estimator.steps[-1][1].C = 1.0 + time.time_ns() % 1_000_000 / 1e7  # a model no earlier run built
        joblib.dump(estimator, path)
        rebuilt = build_project(template_project, tag=f"{built.image_ref}-model2", base_image=base_image)
    finally:
        path.write_bytes(original)
    print(
        f"\nrebuild after a model change: {rebuilt.seconds:.1f} s "
        f"({rebuilt.cached_steps}/{rebuilt.steps} steps cached)"
    )

    assert rebuilt.requirements_reused
    reused = " | ".join(rebuilt.reused_steps)
    for step in (
        "COPY requirements.txt",
        "RUN python3 -m venv /opt/venv",
        "RUN python3 -m venv /tmp/cyclonedx",
    ):
        assert step in reused, f"{step} was rebuilt; reused: {reused}"
    assert 'COPY ["model"' not in reused
    assert rebuilt.model_sha256 != built.model_sha256
    before, after = _layers(built.image_ref), _layers(rebuilt.image_ref)
    dockerfile = built.dockerfile_path.read_text()
    lines = [line for line in dockerfile.splitlines() if re.match(r"^(RUN|COPY) ", line)]
    runtime_layer = next(i for i, line in enumerate(lines) if line.startswith("COPY mlship_serving/"))
    model_layer = next(i for i, line in enumerate(lines) if line.startswith('COPY ["model"'))
    base_layers = len(before) - len(lines)
    dependencies = base_layers + runtime_layer  # base, venv, requirements, pip install, SBOM
    assert before[:dependencies] == after[:dependencies]
    assert before[base_layers + model_layer] != after[base_layers + model_layer]
    assert rebuilt.seconds < 60


def test_the_build_result_points_at_real_files(built: BuildResult) -> None:
    for path in (built.requirements_path, built.dockerfile_path, built.openapi_path):
        assert path.is_file()
    assert json.loads(built.openapi_path.read_text())["openapi"].startswith("3.")


class _Marker:
    """A pickle that, if the service ever unpickled it, would create a file inside the container."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        import os

        return (os.system, ("touch /tmp/mlship-pwned",))


@pytest.mark.parametrize("content_type", ["application/octet-stream", "application/x-python+pickle"])
def test_a_pickle_body_is_415_and_never_unpickled_in_the_container(
    container: image.RunningContainer, template_project: Path, content_type: str
) -> None:
    import pickle

    import httpx

    response = httpx.post(
        f"{container.url}/predict", content=pickle.dumps(_Marker()), headers={"Content-Type": content_type}
    )
    assert response.status_code == 415
    marker = container.exec(
        ["/opt/venv/bin/python", "-c", "import os; print(os.path.exists('/tmp/mlship-pwned'))"]
    )
    assert marker.output.strip().splitlines()[-1] == "False"
    example = json.loads((template_project / "schema.json").read_text())["example"]
    assert httpx.post(f"{container.url}/predict", json=example).status_code == 200
