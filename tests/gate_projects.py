"""Small, real mlship projects for the gate's tests: a scikit-learn model trained once per test session,
written with mlship.yaml, solution.py, schema.json, data/test.csv and a tests/ folder into a tmp folder.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import numpy as np  # noqa: TID253 - tests build data frames directly
import pandas as pd  # noqa: TID253

TARGET = "is_fraud"
FEATURES = ["amount", "items", "channel"]

GOOD_SOLUTION = '''\
"""A fraud model: mlship loads it and predicts in a child process."""
from pathlib import Path

import joblib


class Model:
    def load(self, artifacts: Path) -> None:
        self.estimator = joblib.load(Path(artifacts) / "model.joblib")
        self.classes_ = list(self.estimator.classes_)

    def predict(self, rows):
        return self.estimator.predict(rows)

    def predict_proba(self, rows):
        return self.estimator.predict_proba(rows)
'''

PROJECT_TEST = """\
def test_truth():
    assert 1 + 1 == 2
"""

FAILING_PROJECT_TEST = """\
def test_ok():
    assert True


def test_broken():
    assert 1 + 1 == 3, "arithmetic is broken"
"""


def make_frame(rows: int, seed: int) -> pd.DataFrame:
    """Transactions whose fraud label depends on amount and channel (a model learns it well)."""
    rng = np.random.default_rng(seed)
    amount = rng.gamma(2.0, 120.0, rows).round(2)
    items = rng.integers(1, 10, rows)
    channel = rng.choice(["web", "pos", "app"], rows, p=[0.5, 0.3, 0.2])
    score = (amount - 300) / 60 + np.where(channel == "web", 1.0, -1.0) + rng.normal(0, 0.7, rows)
    return pd.DataFrame(
        {"amount": amount, "items": items, "channel": channel, TARGET: (score > 0).astype(int)}
    )


@functools.cache
def trained_artifacts() -> Path:
    """Train the model once per test session; return the folder holding model.joblib and schema.json."""
    import joblib
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from mlship.project.schema import infer_schema

    folder = Path(tempfile.mkdtemp(prefix="mlship-test-model-"))
    train = make_frame(600, seed=1)
    features = ColumnTransformer(
        [
            ("num", StandardScaler(), ["amount", "items"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["channel"]),
        ]
    )
    estimator = make_pipeline(features, LogisticRegression(max_iter=1000)).fit(train[FEATURES], train[TARGET])
    joblib.dump(estimator, folder / "model.joblib")
    schema = infer_schema(train[FEATURES], train[TARGET])
    (folder / "schema.json").write_text(json.dumps(schema, indent=2), encoding="utf-8")
    return folder


def mlship_yaml(
    metrics: dict[str, dict[str, float]] | None = None,
    *,
    data: str = "data/test.csv",
    timeout_s: float = 60,
    chunk_rows: int = 100_000,
    extra: str = "",
) -> str:
    metrics = metrics or {"f1": {"min": 0.7}, "roc_auc": {"min": 0.85}, "accuracy": {"min": 0.75}}
    lines = "\n".join(f"    {name}: {json.dumps(bounds)}" for name, bounds in metrics.items())
    return (
        f"name: fraud-detector\nmodel: {{solution: solution.py, artifacts: model/}}\nschema: schema.json\n"
        f"evaluation:\n  data: {data}\n  target: {TARGET}\n  timeout_s: {timeout_s}\n"
        f"  chunk_rows: {chunk_rows}\n  metrics:\n{lines}\n{extra}"
    )


def make_project(
    root: Path,
    *,
    solution: str = GOOD_SOLUTION,
    test_rows: int = 300,
    test_data: pd.DataFrame | None = None,
    project_test: str | None = PROJECT_TEST,
    **yaml_options: Any,
) -> Path:
    """Write a complete project into `root` and return it."""
    artifacts = trained_artifacts()
    root.mkdir(parents=True, exist_ok=True)
    (root / "model").mkdir(exist_ok=True)
    shutil.copy(artifacts / "model.joblib", root / "model" / "model.joblib")
    shutil.copy(artifacts / "schema.json", root / "schema.json")
    (root / "solution.py").write_text(textwrap.dedent(solution), encoding="utf-8")
    (root / "mlship.yaml").write_text(mlship_yaml(**yaml_options), encoding="utf-8")
    (root / "data").mkdir(exist_ok=True)
    frame = make_frame(test_rows, seed=2) if test_data is None else test_data
    frame.to_csv(root / "data" / "test.csv", index=False)
    if project_test is not None:
        (root / "tests").mkdir(exist_ok=True)
        (root / "tests" / "test_project.py").write_text(project_test, encoding="utf-8")
    return root


def solution_with(predict_body: str, *, load_body: str = "pass") -> str:
    """A solution.py whose load and predict run the given code (to make them raise, exit or hang)."""
    return (
        f"import os, sys, time\n\n\nclass Model:\n    def load(self, artifacts):\n        {load_body}\n\n"
        f"    def predict(self, rows):\n        {predict_body}\n        return [0] * len(rows)\n"
    )


def line_of(source: str, fragment: str) -> int:
    """The 1-based line of `fragment` in `source`."""
    return next(number for number, line in enumerate(source.splitlines(), 1) if fragment in line)


TRAIN_FUNCTION = '''

def train(data_dir):
    """Fit the fraud pipeline on data_dir/train.csv (what `mlship retrain` calls)."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = pd.read_csv(Path(data_dir) / "train.csv")
    features = ColumnTransformer(
        [
            ("num", StandardScaler(), ["amount", "items"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["channel"]),
        ]
    )
    model = make_pipeline(features, LogisticRegression(max_iter=1000))
    return model.fit(frame[["amount", "items", "channel"]], frame["is_fraud"])
'''


def make_retrain_project(root: Path, **yaml_options: Any) -> Path:
    """A project whose solution.py also has train(data_dir), as `mlship init` and the converter write it."""
    return make_project(root, solution=GOOD_SOLUTION + TRAIN_FUNCTION, **yaml_options)


def folder_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under root: 'nothing written' is this staying the same."""
    import hashlib

    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
