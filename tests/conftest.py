"""Shared fixtures: a CLI runner and a minimal valid mlship.yaml."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

VALID_CONFIG = """\
name: fraud-detector
python: "3.11"
model: {solution: solution.py, artifacts: model/}
schema: schema.json
evaluation:
  data: data/test.csv
  target: is_fraud
  metrics:
    f1: {min: 0.80}
    roc_auc: {min: 0.90}
  against_live: {max_drop: 0.01}
image: {base: "python:3.11-slim", registry: "127.0.0.1:5000"}
serving: {port: 8080, workers: 2, max_body_mb: 10, timeout_s: 5}
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
