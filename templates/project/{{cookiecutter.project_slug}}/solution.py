"""The model this project ships: train it with `python solution.py`, serve it with mlship.

mlship calls `Model().load(artifacts)` once, then `predict(rows)` (and `predict_proba(rows)`) with a
pandas DataFrame whose columns are those in schema.json. Edit freely: mlship never overwrites this file.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import joblib
import pandas as pd

HERE = Path(__file__).resolve().parent
TARGET = "label"
MODEL_FILE = "model.joblib"


def prepare_data(data_dir: Path) -> None:
    """Write the training and held-out test data (a dataset that ships with scikit-learn: no download)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": TARGET})
    train, test = train_test_split(frame, test_size=0.25, random_state=42, stratify=frame[TARGET])
    data_dir.mkdir(parents=True, exist_ok=True)
    train.to_csv(data_dir / "train.csv", index=False)
    test.to_csv(data_dir / "test.csv", index=False)


def train(data_dir: Path):  # type: ignore[no-untyped-def]
    """Fit the model on data_dir/train.csv and return it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = pd.read_csv(data_dir / "train.csv")
    features, labels = frame.drop(columns=[TARGET]), frame[TARGET]
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, labels)


class Model:
    """What the service runs: load the fitted artefact once, then predict on DataFrames."""

    def load(self, artifacts: Path) -> None:
        self.estimator = joblib.load(Path(artifacts) / MODEL_FILE)
        self.classes_ = list(self.estimator.classes_)

    def predict(self, rows: pd.DataFrame) -> Sequence[int]:
        return self.estimator.predict(rows)  # type: ignore[no-any-return]

    def predict_proba(self, rows: pd.DataFrame):  # type: ignore[no-untyped-def]
        return self.estimator.predict_proba(rows)


def main() -> None:
    data_dir = HERE / "data"
    if not (data_dir / "train.csv").exists():
        prepare_data(data_dir)
    estimator = train(data_dir)
    (HERE / "model").mkdir(exist_ok=True)
    joblib.dump(estimator, HERE / "model" / MODEL_FILE)
    print(f"trained {type(estimator).__name__} → model/{MODEL_FILE}", file=sys.stderr)


if __name__ == "__main__":
    main()
