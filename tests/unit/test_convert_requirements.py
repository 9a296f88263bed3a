"""requirements.in from imports, thresholds from achieved metrics, the project files the converter writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlship.convert.requirements import imported_modules, requirement_lines, requirements_text
from mlship.convert.thresholds import metrics_for, threshold
from mlship.convert.writer import README_MARK, check_overwrite, config_text, install, refreshed_config
from mlship.errors import UsageError
from mlship.project.config import parse_config

SOURCE = """
import json
import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from . import sibling
import helpers
def train():
    import xgboost
    from yaml import safe_load
"""


def test_imported_modules_are_top_level_names_in_order() -> None:
    assert imported_modules(SOURCE) == ["json", "numpy", "pandas", "sklearn", "helpers", "xgboost", "yaml"]


def test_requirement_lines_map_modules_to_pinned_distributions() -> None:
    distributions = {
        "numpy": [["numpy", "2.4.6"]],
        "pandas": [["pandas", "3.1.1"]],
        "sklearn": [["scikit-learn", "1.9.1"]],
        "yaml": [["PyYAML", "6.0.2"]],
        "xgboost": [["xgboost", "3.0.0+local.build"]],
        "helpers": [],
    }
    lines, warnings = requirement_lines(
        ["json", "numpy", "pandas", "sklearn", "helpers", "xgboost", "yaml", "mystery", "numpy"],
        distributions,
        stdlib={"json"},
        local={"helpers"},
    )
    assert lines == ["numpy==2.4.6", "pandas==3.1.1", "PyYAML==6.0.2", "scikit-learn==1.9.1", "xgboost"]
    assert len(warnings) == 1 and "'mystery'" in warnings[0]
    text = requirements_text(lines, "nb.ipynb", "3.11")
    assert text.startswith("# What solution.py") and text.endswith("xgboost\n")


def test_metrics_follow_the_task() -> None:
    assert metrics_for("binary", has_scores=True) == ["f1", "roc_auc"]
    assert metrics_for("binary", has_scores=False) == ["f1", "accuracy"]
    assert metrics_for("multiclass", has_scores=True) == ["accuracy", "f1_macro"]
    assert metrics_for("regression", has_scores=False) == ["rmse", "r2"]


@pytest.mark.parametrize(
    ("name", "achieved", "bound"),
    [
        ("f1", 0.8, {"min": 0.7839}),
        ("roc_auc", 0.93456, {"min": 0.9158}),
        ("accuracy", 1.0, {"min": 0.9799}),
        ("f1", 0.0, {"min": 0.0}),
        ("r2", -0.5, {"min": -0.5101}),
        ("rmse", 12.34567, {"max": 12.5926}),
        ("rmse", 0.0, {"max": 0.0001}),
    ],
)
def test_thresholds_sit_just_below_what_was_achieved(
    name: str, achieved: float, bound: dict[str, float]
) -> None:
    assert threshold(name, achieved) == bound
    value = next(iter(bound.values()))
    assert value <= achieved if "min" in bound else value >= achieved


def test_config_text_is_a_valid_mlship_yaml() -> None:
    text = config_text(
        name="churn",
        python="3.11",
        notebook="churn.ipynb",
        target="Churn Label",
        metrics={"f1": {"min": 0.7}, "roc_auc": {"min": 0.8}},
        achieved={"f1": 0.72, "roc_auc": 0.82},
        positive_label="Yes",
        data_note="X_test/y_test",
    )
    config = parse_config(text)
    assert config.evaluation.target == "Churn Label"
    assert config.evaluation.positive_label == "Yes"
    assert config.evaluation.metrics["f1"].min == 0.7
    assert config.image.base == "python:3.11-slim"


def test_refreshed_config_keeps_the_users_settings() -> None:
    fresh = config_text(
        name="fresh",
        python="3.11",
        notebook="nb.ipynb",
        target="y",
        metrics={"rmse": {"max": 2.0}},
        achieved={"rmse": 1.9},
        positive_label=None,
        data_note="",
    )
    existing = "name: mine\nevaluation:\n  target: old\n  metrics: {r2: {min: 0.1}}\nserving: {workers: 4}\n"
    merged = parse_config(refreshed_config(existing, fresh))
    assert merged.name == "mine" and merged.serving.workers == 4
    assert merged.evaluation.target == "y" and list(merged.evaluation.metrics) == ["rmse"]


def test_existing_code_is_never_overwritten_without_force(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "solution.py").write_text("# mine\n")
    (tmp_path / "tests" / "test_solution.py").write_text("# mine\n")
    (tmp_path / "README.md").write_text("my notes\n")
    with pytest.raises(UsageError) as raised:
        check_overwrite(tmp_path, force=False, keep_code=False)
    for name in ("solution.py", "tests/test_solution.py", "README.md"):
        assert name in raised.value.message
    assert "--force" in (raised.value.hint or "")
    assert check_overwrite(tmp_path, force=True, keep_code=False) == []
    assert check_overwrite(tmp_path, force=False, keep_code=True) == [
        "solution.py",
        "tests/test_solution.py",
        "README.md",
    ]
    (tmp_path / "README.md").write_text(f"{README_MARK}\n# generated\n")
    assert "README.md" not in check_overwrite(tmp_path, force=False, keep_code=True)


def test_install_leaves_kept_files_alone(tmp_path: Path) -> None:
    staging, target = tmp_path / "staging", tmp_path / "project"
    (staging / "model").mkdir(parents=True)
    (staging / "solution.py").write_text("new\n")
    (staging / "model" / "model.joblib").write_text("bytes\n")
    target.mkdir()
    (target / "solution.py").write_text("mine\n")
    written = install(staging, target, kept=["solution.py"])
    assert written == ["model/model.joblib"]
    assert (target / "solution.py").read_text() == "mine\n"


def test_the_summary_names_the_model_the_candidates_and_how_to_pick_another() -> None:
    from mlship.convert.result import ConvertResult, OtherCandidate

    result = ConvertResult(
        project=Path("/tmp/fraud"),
        notebook=Path("/tmp/notebooks/fraud.ipynb"),
        name="fraud",
        files=["solution.py", "mlship.yaml"],
        variable="grid.best_estimator_",
        cell=12,
        estimator="Pipeline(ColumnTransformer → HistGradientBoostingClassifier)",
        reason="the refit best estimator of GridSearchCV `grid`",
        candidates=[OtherCandidate(name="baseline", type="Pipeline", cell=9, tested_on="X_test/y_test")],
        task="binary",
        target="is_fraud",
        features=["amount", "channel"],
        test_data="X_test/y_test: 4,000 held-out rows",
        metrics={"f1": 0.5, "roc_auc": 0.93},
        thresholds={"f1": {"min": 0.49}, "roc_auc": {"min": 0.9114}},
        warnings=["a note"],
        kernel="python3",
        seconds=12.0,
        notebook_seconds=10.0,
    )
    text = result.summary()
    assert "grid.best_estimator_" in text and "cell 12" in text and "best estimator of GridSearchCV" in text
    assert "baseline (Pipeline, cell 9)" in text
    assert "mlship-model" in text and "# mlship: model=NAME" in text
    assert "roc_auc 0.9300 (gate ≥ 0.9114)" in text
    assert "note:[/] a note" in text
