"""Small projects for the build tests: a light one (no heavy imports, for unit and CLI tests) and the
secrets a test plants in a project to prove they never reach the build context or the image."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

LIGHT_SOLUTION = '''\
"""A model with no dependencies: predicts 1 when amount > 100."""
from pathlib import Path


class Model:
    def load(self, artifacts: Path) -> None:
        self.threshold = float((Path(artifacts) / "threshold.txt").read_text())

    def predict(self, rows):
        return [int(value > self.threshold) for value in rows["amount"]]
'''

SCHEMA = {
    "mlship_schema": 1,
    "task": "binary",
    "target": {"name": "is_fraud", "type": "integer", "classes": [0, 1]},
    "columns": [
        {"name": "amount", "type": "number", "nullable": False, "minimum": 0.0, "maximum": 1000.0},
        {"name": "channel", "type": "string", "nullable": False, "enum": ["web", "pos"]},
    ],
    "example": {"amount": 45.0, "channel": "web"},
}

CONFIG = """\
name: fraud-detector
python: "3.11"
model: {solution: solution.py, artifacts: model/}
schema: schema.json
evaluation:
  data: data/test.csv
  target: is_fraud
  metrics: {f1: {min: 0.5}}
image: {registry: "127.0.0.1:5000"}
serving: {port: 8080, workers: 1}
"""

# Files that must never reach a build context or an image layer: path → content (a unique marker).
SECRETS = {
    ".env": "MLSHIP_TEST_SECRET_ENV=hunter2-env\n",
    "deploy.pem": "-----BEGIN PRIVATE KEY-----\nmlship-test-secret-pem\n",
    "server.key": "mlship-test-secret-key\n",
    "id_rsa": "mlship-test-secret-id-rsa\n",
    ".git/config": "[remote]\n\turl = https://user:mlship-test-secret-git@example.com/x.git\n",
    "model/.env": "MLSHIP_TEST_SECRET_MODEL_ENV=1\n",
    "model/signing.pem": "mlship-test-secret-model-pem\n",
    "notes/private.txt": "mlship-test-not-shipped\n",
}
SECRET_MARKERS = ("hunter2-env", "secret-pem", "secret-key", "secret-id-rsa", "secret-git", "not-shipped")


def write_light_project(root: Path, config: str = CONFIG, solution: str = LIGHT_SOLUTION) -> Path:
    """A valid project whose model needs nothing but the standard library (and pandas to call it)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "mlship.yaml").write_text(config)
    (root / "solution.py").write_text(textwrap.dedent(solution))
    (root / "schema.json").write_text(json.dumps(SCHEMA, indent=2))
    (root / "model").mkdir(exist_ok=True)
    (root / "model" / "threshold.txt").write_text("100\n")
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "test.csv").write_text("amount,channel,is_fraud\n50,web,0\n500,pos,1\n")
    (root / "requirements.in").write_text("# nothing beyond the serving runtime\n")
    return root


def plant_secrets(root: Path) -> None:
    """Write every file of SECRETS into the project."""
    for relative, content in SECRETS.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


# A stand-in for `python -m piptools compile`: records its argv, then behaves as FAKE_PIPTOOLS_MODE says.
FAKE_PIPTOOLS = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    log = Path(os.environ["FAKE_PIPTOOLS_LOG"])
    calls = json.loads(log.read_text()) if log.exists() else []
    calls.append({"argv": sys.argv[1:], "cwd": os.getcwd()})
    log.write_text(json.dumps(calls))
    mode = os.environ.get("FAKE_PIPTOOLS_MODE", "ok")
    if mode != "ok":
        sys.stderr.write(Path(os.environ["FAKE_PIPTOOLS_STDERR"]).read_text())
        sys.exit(1)
    output = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--output-file="))
    sources = [a for a in sys.argv[1:] if not a.startswith("-")]
    names = [line.split("#")[0].strip() for s in sources for line in Path(s).read_text().splitlines()]
    body = "".join(
        f"{name}==1.0 \\\\\\n    --hash=sha256:{'0' * 64}\\n    # via -r {sources[0]}\\n"
        for name in sorted(n for n in names if n)
    )
    Path(output).write_text(body)
    """
)


def use_fake_pip_compile(monkeypatch: pytest.MonkeyPatch, scratch: Path) -> Path:
    """Make mlship.build.requirements run FAKE_PIPTOOLS, not pip-compile; return its call log."""
    import sys

    from mlship.build import requirements as deps

    script = scratch / "fake_piptools.py"
    script.write_text(FAKE_PIPTOOLS)
    log = scratch / "piptools-calls.json"
    monkeypatch.setattr(deps, "piptools_argv", lambda: [sys.executable, str(script)])
    monkeypatch.setenv("FAKE_PIPTOOLS_LOG", str(log))
    monkeypatch.setenv("FAKE_PIPTOOLS_MODE", "ok")
    return log


def within_schema(row: dict[str, object], schema: dict[str, object]) -> bool:
    """Whether the service's contract accepts the row: its nulls, bounds and categories (schema.json)."""
    for column in schema["columns"]:  # type: ignore[attr-defined]
        value = row.get(column["name"])
        if value is None:
            if not column.get("nullable", False):
                return False
            continue
        if column.get("minimum") is not None and value < column["minimum"]:  # type: ignore[operator]
            return False
        if column.get("maximum") is not None and value > column["maximum"]:  # type: ignore[operator]
            return False
        if column.get("enum") is not None and value not in column["enum"]:
            return False
    return True
