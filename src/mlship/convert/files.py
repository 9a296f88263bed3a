"""The files a conversion writes into the project from the kernel's answers: data, schema and test data,
solution.py, requirements.in, and the metrics its thresholds come from (mixed into `job.Conversion`)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlship.convert.cells import Cell
from mlship.convert.requirements import OWN_MODULES, imported_modules, requirement_lines, requirements_text
from mlship.convert.select import Choice, Pair
from mlship.errors import MlshipError, NotebookError

if TYPE_CHECKING:
    from mlship.convert.render import InputSpec
    from mlship.convert.training import TrainCode

ARTIFACT = "model.joblib"
GOLDEN_ROWS = 50
MAX_DATA_BYTES = 500 * 10**6  # the notebook's data files copied into the project for train()
DATA_FOLDER = "data/notebook"


class ProjectFiles:
    """The writing steps of a conversion; the state they read is set by `job.Conversion`'s earlier steps."""

    session: Any
    notebook: Path
    target: Path
    staging: Path
    cells: list[Cell]
    kept: list[str]
    installed: Future[dict[str, list[str]]]
    warnings: list[str]
    metrics: dict[str, float]
    thresholds: dict[str, dict[str, float]]
    survey: dict[str, Any]
    same_python: bool
    choice: Choice
    exported: dict[str, Any]
    schema_pair: Pair | None
    mapping: dict[str, str]
    local_modules: set[str]
    rows_csv: Path
    schema: dict[str, Any]
    spec: InputSpec
    code: TrainCode | None
    expression: str
    verified: dict[str, Any]
    metric_names: list[str]
    positive: Any

    def probe(self, function: str, request: dict[str, Any], *, what: str) -> dict[str, Any]:
        raise NotImplementedError  # the kernel call, in job.Conversion

    def write_data_files(self) -> None:
        """Copy the files the notebook read (and its local modules) into the project."""
        workdir = self.session.workdir.resolve()
        self.mapping: dict[str, str] = {}
        self.local_modules: set[str] = set()
        copied = 0
        for entry in self.survey.get("reads", []):
            path = Path(entry["path"])
            if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".ipynb", ".pyc"):
                continue
            if copied + path.stat().st_size > MAX_DATA_BYTES and path.suffix != ".py":
                self.warnings.append(
                    f"did not copy {path.name} into {DATA_FOLDER}/ (the notebook's data is over "
                    f"{MAX_DATA_BYTES // 10**6} MB): copy it there yourself before running train()"
                )
                continue
            relative = Path(os.path.relpath(path, workdir)).as_posix()
            if path.suffix == ".py":
                if not relative.startswith("../"):
                    destination = self.staging / relative
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, destination)
                    self.local_modules.add(Path(relative).parts[0].removesuffix(".py"))
                continue
            written = relative
            while written.startswith("../"):
                written = written[3:]
            destination = self.staging / DATA_FOLDER / written
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
            copied += path.stat().st_size
            self.mapping[written] = written
        total = sum((self.staging / DATA_FOLDER / name).stat().st_size for name in self.mapping)
        if total > 100 * 1024 * 1024:
            self.warnings.append(
                f"copied {total / 1e6:,.0f} MB of the notebook's data into {DATA_FOLDER}/ (for train())"
            )

    def write_schema_and_test_data(self) -> None:
        """schema.json from the training rows; data/test.csv was written by the kernel (export)."""
        heldout = self.choice.heldout is not None
        self.rows_csv = self.staging / "data" / "test.csv" if heldout else self.session.scratch / "rows.csv"
        path = self.staging / "schema.json"
        request = {"target": self.exported["target"], "task": self.choice.candidate.task, "path": str(path)}
        if self.same_python:
            self.probe("schema", request, what="inferring schema.json")
        else:
            self._local_schema(path)
        self.schema = json.loads(path.read_text(encoding="utf-8"))

    def _local_schema(self, path: Path) -> None:
        import pandas as pd

        from mlship.project.schema import infer_schema

        scratch = self.session.scratch
        heldout = pd.read_pickle(scratch / "heldout.pkl") if (scratch / "heldout.pkl").is_file() else None
        train = pd.read_pickle(scratch / "train.pkl") if (scratch / "train.pkl").is_file() else None
        source = train if train is not None else heldout
        assert source is not None
        target = self.exported["target"]
        schema = infer_schema(source.drop(columns=[target]), source[target], self.choice.candidate.task)
        if heldout is not None:
            for column in schema["columns"]:
                if heldout[column["name"]].isna().any():
                    column["nullable"] = True
        path.write_text(json.dumps(schema, indent=1) + "\n", encoding="utf-8")

    def write_solution(self) -> None:
        from mlship.convert.render import InputSpec, render_solution
        from mlship.convert.training import training_code

        candidate = self.choice.candidate
        info = self.exported["input"]
        self.spec = InputSpec(
            kind=info["kind"],
            columns=info["columns"],
            labels=info.get("labels"),
            dtypes=info.get("dtypes", {}),
            categories=info.get("categories", {}),
            array_dtype=info.get("array_dtype"),
        )
        defs = [entry["name"] for entry in self.exported["dump"].get("defined", [])]
        executed = set(self.session.executed)
        cells = [cell for cell in self.cells if cell.index in executed]
        code = None
        try:
            code = training_code(cells, candidate.fit_cell, candidate.aliases, defs)
            self.warnings.extend(code.warnings)
        except Exception as error:  # the model still ships; train() then says what to do
            self.warnings.append(
                f"could not extract the training code into train() ({type(error).__name__}: {error}); "
                "write it by hand in solution.py"
            )
        self.code = code
        self.expression = code.returned if code else candidate.name
        if "solution.py" in self.kept:
            shutil.copy2(self.target / "solution.py", self.staging / "solution.py")
            return
        rendered = render_solution(
            notebook=self.notebook.name,
            expression=self.expression,
            description=candidate.description,
            cell=candidate.fit_cell + 1,
            task=candidate.task,
            target=self.exported["target"],
            spec=self.spec,
            code=code,
            proba=bool(self.exported["proba"]),
            decision=bool(self.exported["decision"]),
            data_mapping=self.mapping,
            has_defs=bool(defs),
        )
        try:
            compile(rendered.text, "solution.py", "exec")
        except SyntaxError as error:
            raise NotebookError(
                f"the solution.py generated from {self.notebook.name} is not valid Python "
                f"(line {error.lineno}: {error.msg})",
                hint="run again with 'mlship --debug …' and report it",
            ) from error
        if code is not None and self.mapping and rendered.paths_rewritten == 0:
            self.warnings.append(
                "train() may not find the notebook's data files: edit its paths to read them from data_dir "
                f"({DATA_FOLDER}/)"
            )
        (self.staging / "solution.py").write_text(rendered.text, encoding="utf-8")

    def write_requirements(self) -> None:
        source = (self.staging / "solution.py").read_text(encoding="utf-8")
        modules = list(
            dict.fromkeys([*OWN_MODULES, *imported_modules(source), *self.exported["dump"]["modules"]])
        )
        found = self.distributions(modules)
        lines, warnings = requirement_lines(
            modules, found["modules"], stdlib=set(found["stdlib"]), local=self.local_modules
        )
        self.warnings.extend(warnings)
        text = requirements_text(lines, self.notebook.name, self.survey["python"])
        (self.staging / "requirements.in").write_text(text, encoding="utf-8")

    def distributions(self, modules: list[str]) -> dict[str, Any]:
        """Distributions and versions providing `modules` where the kernel runs (here, when it is this very
        interpreter: the mapping was made while the notebook ran)."""
        from importlib import metadata

        if self.survey.get("executable") != sys.executable:
            return self.probe("distributions", {"modules": modules}, what="finding the distributions")
        mapping = self.installed.result()
        found: dict[str, list[list[str]]] = {}
        for module in modules:
            pairs = []
            for distribution in mapping.get(module, []):
                try:
                    pairs.append([distribution, metadata.version(distribution)])
                except metadata.PackageNotFoundError:
                    continue
            found[module] = pairs
        stdlib = sorted(set(sys.stdlib_module_names) & set(modules))
        return {"modules": found, "stdlib": stdlib}

    def _metrics(self) -> None:
        from mlship.convert.thresholds import metrics_for, threshold

        candidate = self.choice.candidate
        verified = self.verified
        names = metrics_for(candidate.task, has_scores=verified.get("scores") is not None)
        self.metric_names = names
        self.positive = self._positive_label()
        if self.choice.heldout is None:
            return
        if self.same_python:
            request = {
                "target": self.exported["target"],
                "metrics": names,
                "positive_label": self.positive,
                "task": candidate.task,
            }
            found = self.probe("metrics", request, what="computing the metrics")
        else:
            found = self._local_metrics(names)
        if "error" in found:
            self.warnings.append(f"could not compute the metrics on the held-out rows: {found['error']}")
            return
        for name, value in found["values"].items():
            if value is None:
                self.warnings.append(f"{name} is undefined on the held-out rows; no threshold set")
                continue
            self.metrics[name] = round(value, 6)
            self.thresholds[name] = threshold(name, value)

    def _local_metrics(self, names: list[str]) -> dict[str, Any]:
        from mlship.gate.metrics import evaluate_predictions
        from mlship.project.config import Evaluation, Threshold

        verified = self.verified
        evaluation = Evaluation(
            target=self.exported["target"],
            metrics={name: Threshold() for name in names},
            positive_label=self.positive,
        )
        try:
            results = evaluate_predictions(
                verified["truth"],
                verified["labels"],
                verified.get("scores"),
                evaluation,
                task=self.choice.candidate.task,
                classes=verified.get("classes"),
                score_kind=verified.get("score_kind"),
            )
        except MlshipError as error:
            return {"error": error.message}
        return {"values": {result.name: result.value for result in results}}

    def _positive_label(self) -> Any:
        classes = self.verified.get("classes") or []
        if self.choice.candidate.task != "binary" or len(classes) != 2:
            return None
        if any(value in (1, True) and not isinstance(value, float) for value in classes):
            return None
        last = classes[-1]
        return last if isinstance(last, (str, int)) and not isinstance(last, bool) else None
