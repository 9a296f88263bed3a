"""The CI jobs `mlship init` writes pass the GitHub/GitLab schema checks; the pre-push hook."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from mlship.errors import UsageError
from mlship.project.hooks import MARKER, install_pre_push
from mlship.project.scaffold import write_ci_files
from tests.conftest import VALID_CONFIG


@pytest.fixture
def ci_project(tmp_path: Path) -> Path:
    write_ci_files(tmp_path, "fraud-detector", "3.11")
    return tmp_path


def test_github_workflow_runs_gate_on_prs_and_deploy_on_main(ci_project: Path) -> None:
    workflow = yaml.safe_load((ci_project / ".github/workflows/mlship.yml").read_text())
    assert set(workflow[True]) == {"pull_request", "push"}  # YAML 1.1 reads the key `on` as True
    steps = [step.get("run", "") for step in workflow["jobs"]["gate"]["steps"]]
    assert "mlship test --junit mlship-junit.xml" in steps
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "gate" and "refs/heads/main" in deploy["if"]
    assert deploy["steps"][-1]["env"]["MLSHIP_REGISTRY_PASSWORD"] == "${{ secrets.MLSHIP_REGISTRY_PASSWORD }}"


@pytest.mark.parametrize(
    ("file", "schema"),
    [
        (".github/workflows/mlship.yml", "vendor.github-workflows"),
        (".github/workflows/mlship-retrain.yml", "vendor.github-workflows"),
        (".gitlab-ci.yml", "vendor.gitlab-ci"),
    ],
)
def test_ci_files_pass_their_schema(ci_project: Path, file: str, schema: str) -> None:
    result = subprocess.run(
        ["check-jsonschema", "--builtin-schema", schema, str(ci_project / file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_gitlab_ci_jobs(ci_project: Path) -> None:
    gitlab = yaml.safe_load((ci_project / ".gitlab-ci.yml").read_text())
    assert "mlship test --junit mlship-junit.xml" in gitlab["mlship-gate"]["script"]
    assert gitlab["mlship-gate"]["artifacts"]["reports"]["junit"] == "mlship-junit.xml"
    assert gitlab["mlship-deploy"]["script"] == ["mlship deploy --json"]


def test_scheduled_retrain_jobs_retrain_then_deploy_and_fail_on_a_breach(ci_project: Path) -> None:
    github = yaml.safe_load((ci_project / ".github/workflows/mlship-retrain.yml").read_text())
    assert github[True]["schedule"] == [{"cron": "0 3 * * 1"}] and "workflow_dispatch" in github[True]
    steps = github["jobs"]["retrain"]["steps"]
    runs = [step.get("run", "") for step in steps]
    retrain = next(i for i, run in enumerate(runs) if "mlship retrain --data" in run)
    assert "set -o pipefail" in runs[retrain]  # exit 11 or 5 fails the step, through the tee
    assert runs[-1] == "mlship deploy --canary 5 --allow-dirty --json" and retrain < len(runs) - 1
    gitlab = yaml.safe_load((ci_project / ".gitlab-ci.yml").read_text())
    job = gitlab["mlship-retrain"]
    assert job["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule"'}]
    assert job["script"][0].startswith('mlship retrain --data "$MLSHIP_RETRAIN_DATA"')
    assert job["script"][-1] == "mlship deploy --canary 5 --allow-dirty --json"
    for other in ("mlship-gate", "mlship-deploy"):  # a scheduled pipeline runs only the retrain
        assert gitlab[other]["rules"][0] == {"if": '$CI_PIPELINE_SOURCE == "schedule"', "when": "never"}


def test_pre_push_hook(tmp_path: Path) -> None:
    project = tmp_path / "models" / "fraud"
    project.mkdir(parents=True)
    (project / "mlship.yaml").write_text(VALID_CONFIG)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    hook = install_pre_push(project).hook
    assert hook == tmp_path / ".git" / "hooks" / "pre-push"
    text = hook.read_text()
    assert MARKER in text and "/models/fraud" in text and "exec mlship test" in text
    assert hook.stat().st_mode & 0o111
    hook.write_text("#!/bin/sh\necho mine\n")
    with pytest.raises(UsageError, match="was not written by mlship"):
        install_pre_push(project)
    assert hook.read_text() == "#!/bin/sh\necho mine\n"
    install_pre_push(project, force=True)
    assert MARKER in hook.read_text()
