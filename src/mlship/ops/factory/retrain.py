"""`mlship retrain --data NEW`: guard the new data, train a challenger, beat the live champion, bless it.

    read NEW (CSV/Parquet, path or URL) → data guards (retrain.guards; a breach: DataGuardBreach, exit 11,
    nothing written) → split off retrain.holdout of the rows (seeded) → train the challenger in the sandbox
    (solution.py's retrain(data_dir, artifacts), or train(data_dir) saved to the artefact file) → the
    challenger and the live champion (its model read from the registry's image by digest, nothing run from
    the image) scored on the same held-out rows → thresholds + compare rules → blessed: the challenger's
    artefacts replace the project's and the blessing record is written; refused: exit 5, nothing written.

The registry is only read, never written: releasing the blessed model is `mlship deploy`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from mlship.errors import DataGuardBreach, ExitCode
from mlship.gate.metrics import MetricResult
from mlship.ops.factory.compare import MetricComparison, compare
from mlship.ops.factory.guards import GuardResult, run_guards
from mlship.project.config import Project

if TYPE_CHECKING:
    import pandas as pd

TRAIN_FILE = "train.csv"


class Champion(BaseModel):
    version: str
    digest: str
    metrics: list[MetricResult]


class RetrainResult(BaseModel):
    """The verdict, with everything the blessing record holds."""

    blessed: bool
    blessing: str | None
    reason: str
    guards: list[GuardResult]
    challenger: list[MetricResult]
    champion: Champion | None
    comparison: list[MetricComparison]
    data: str
    data_sha256: str
    holdout_sha256: str
    rows: int
    train_rows: int
    holdout_rows: int
    artifacts_sha256: str
    git_revision: str | None
    seconds: float

    @property
    def exit_code(self) -> int:
        return 0 if self.blessed else int(ExitCode.BELOW_BASELINE)


def read_new_data(location: str, schema: dict[str, Any], target: str) -> tuple[pd.DataFrame, str]:
    """The whole new training table and its sha256 (a path or an http(s) URL, CSV or Parquet)."""
    import pandas as pd

    from mlship.ops.factory.source import text_columns
    from mlship.project.data import open_data, read_chunks

    strings = text_columns(schema)
    if (schema.get("target") or {}).get("type") == "string":
        strings.append(target)
    with open_data(location, location) as data:
        frame = pd.concat(list(read_chunks(data, 500_000, strings)), ignore_index=True)
        return frame, data.sha256


def _artifact_file(project: Project) -> str:
    """The file train()'s result is saved to: the one artefact file there is (default model.joblib)."""
    folder = project.artifacts_path
    if folder.is_file():
        return folder.name
    files = sorted(p.name for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
    return files[0] if len(files) == 1 else "model.joblib"


def artifacts_manifest(folder: Path, prefix: str) -> dict[str, str]:
    """{prefix/relative path: sha256} of every file under `folder`."""
    return {
        f"{prefix}/{path.relative_to(folder).as_posix()}": hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def evaluate_model(
    project: Project,
    solution: Path,
    artifacts: Path,
    cwd: Path,
    holdout: pd.DataFrame,
    schema: dict[str, Any],
) -> list[MetricResult]:
    """The evaluation metrics (and their thresholds) of one model on the held-out rows, in the sandbox."""
    from mlship.gate.metrics import evaluate_predictions, infer_gate_task, needs_scores, resolve_classes
    from mlship.gate.sandbox import ModelProcess

    evaluation = project.config.evaluation
    columns = [column["name"] for column in schema["columns"]]
    truth = holdout[evaluation.target].to_numpy()
    with ModelProcess(solution, artifacts, timeout_s=evaluation.timeout_s, cwd=cwd) as model:
        predictions = model.predict(holdout[columns], scores=needs_scores(evaluation.metrics))
        model_classes = model.classes
    task = str(schema.get("task") or infer_gate_task(evaluation.metrics, truth))
    classes = None
    if task != "regression":
        classes = resolve_classes(
            model_classes, (schema.get("target") or {}).get("classes"), truth, predictions.labels
        )
    return evaluate_predictions(
        truth,
        predictions.labels,
        predictions.scores,
        evaluation,
        task=task,
        classes=classes,
        score_kind=predictions.score_kind,
    )


def _champion(
    project: Project, registry: str | None, holdout: pd.DataFrame, schema: dict[str, Any], folder: Path
) -> Champion | None:
    """The live release evaluated on the held-out rows; None when nothing is live (or no registry is set)."""
    from mlship.ops.factory.champion import extract_model, registry_for
    from mlship.ops.factory.source import folder_source
    from mlship.release.versions import LIVE_TAG, live_version

    if not (registry or project.config.image.registry):
        return None
    client, repo = registry_for(project.root, registry)
    with client:
        version = live_version(client, repo, client.tags(repo)) if LIVE_TAG in client.tags(repo) else None
        if version is None:
            return None
        digest = str(client.manifest_digest(repo, version))
        extract_model(client, repo, digest, folder)
    source = folder_source(folder, version)
    metrics = evaluate_model(project, source.solution, source.artifacts, folder, holdout, source.schema)
    return Champion(version=version, digest=digest, metrics=metrics)


def _values(metrics: list[MetricResult]) -> dict[str, float | None]:
    return {metric.name: metric.value for metric in metrics}


def _verdict(
    challenger: list[MetricResult],
    comparison: list[MetricComparison],
    champion: Champion | None,
    registry: bool,
) -> str:
    below = [m for m in challenger if not m.passed]
    if below:
        return "the challenger misses its thresholds: " + ", ".join(m.explain() for m in below)
    worse = [c for c in comparison if not c.passed]
    if worse and champion is not None:
        return f"the challenger does not beat the live champion {champion.version}: " + "; ".join(
            f"{c.metric} {c.detail}" for c in worse
        )
    if worse:
        return "; ".join(f"{c.metric}: {c.detail}" for c in worse)
    if champion is not None:
        against = f"beats the live champion {champion.version}"
    else:
        against = "nothing is live yet" if registry else "no registry to compare with (image.registry unset)"
    return f"blessed: meets every threshold and {against}"


def retrain(
    project_dir: Path, data: str, *, registry: str | None = None, now: datetime | None = None
) -> RetrainResult:
    """Guard, train, compare and (when better) bless; see the module docstring. Raises DataGuardBreach
    (exit 11), DataError, TestsFailed (the training or the model failed), RegistryError."""
    from mlship.project.config import load_project
    from mlship.project.schema import load_schema
    from mlship.release.deploy import git_state

    started = time.perf_counter()
    project = load_project(project_dir)
    config = project.config
    schema = load_schema(project.schema_path)
    target = config.evaluation.target
    frame, data_sha256 = read_new_data(data, schema, target)
    guards = run_guards(frame, schema, target, config.retrain.guards, now)
    breach = next((guard for guard in guards if not guard.passed), None)
    if breach is not None:
        where = f" (column '{breach.column}')" if breach.column else ""
        raise DataGuardBreach(
            f"data guard '{breach.guard}' stopped the retrain on {data}{where}: {breach.detail}",
            hint="fix the new data, or adjust retrain.guards in mlship.yaml; nothing was trained or written",
        )
    holdout = frame.sample(frac=config.retrain.holdout, random_state=config.retrain.seed)
    training = frame.drop(index=holdout.index)
    holdout_sha256 = hashlib.sha256(holdout.to_csv(index=False).encode()).hexdigest()
    relative = project.artifacts_path.relative_to(project.root.resolve()).as_posix()
    with tempfile.TemporaryDirectory(prefix="mlship-retrain-") as folder:
        work = Path(folder)
        (work / "data").mkdir()
        training.to_csv(work / "data" / TRAIN_FILE, index=False)
        artifacts = work / "challenger" / relative
        from mlship.gate.sandbox import ModelProcess

        with ModelProcess(
            project.solution_path, artifacts, timeout_s=config.retrain.timeout_s, cwd=project.root, load=False
        ) as trainer:
            trainer.train(work / "data", _artifact_file(project))
        challenger = evaluate_model(project, project.solution_path, artifacts, project.root, holdout, schema)
        champion = _champion(project, registry, holdout, schema, work / "champion")
        comparison = compare(config, _values(challenger), _values(champion.metrics) if champion else None)
        blessed = all(m.passed for m in challenger) and all(c.passed for c in comparison)
        manifest = artifacts_manifest(artifacts, relative)
        from mlship.build.context import manifest_sha256

        result = RetrainResult(
            blessed=blessed,
            blessing=None,
            reason=_verdict(challenger, comparison, champion, bool(registry or config.image.registry)),
            guards=guards,
            challenger=challenger,
            champion=champion,
            comparison=comparison,
            data=data,
            data_sha256=data_sha256,
            holdout_sha256=holdout_sha256,
            rows=len(frame),
            train_rows=len(training),
            holdout_rows=len(holdout),
            artifacts_sha256=manifest_sha256(manifest),
            git_revision=git_state(project.root).revision,
            seconds=0.0,
        )
        if blessed:
            result.blessing = str(_bless(project, artifacts, result, now))
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _bless(project: Project, artifacts: Path, result: RetrainResult, now: datetime | None) -> Path:
    """Put the challenger's artefacts in the project and write the blessing record next to mlship.yaml."""
    target = project.artifacts_path
    if artifacts.is_dir() and target.suffix == "":
        shutil.copytree(artifacts, target, dirs_exist_ok=True)
    else:
        shutil.copy2(artifacts, target)
    record = {
        "mlship_blessing": 1,
        "created": (now or datetime.now(timezone.utc)).isoformat(),
        **result.model_dump(mode="json"),
    }
    path = project.path(project.config.retrain.blessing, "retrain.blessing")
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
