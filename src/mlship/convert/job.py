"""The steps of one conversion, run while the notebook's kernel is still alive: survey the kernel, choose
the model, export it with its data, write solution.py, verify it in the kernel, write the rest."""

from __future__ import annotations

import json
import os
import shutil
import sys
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from mlship.convert.cells import Cell, fit_site, fitted_on
from mlship.convert.files import ARTIFACT, GOLDEN_ROWS, ProjectFiles
from mlship.convert.result import ConvertResult, OtherCandidate
from mlship.convert.select import Candidate, Choice, Pair, choose
from mlship.errors import MlshipError, NotebookError


class Conversion(ProjectFiles):
    """One conversion, with the kernel still alive."""

    def __init__(
        self,
        session: Any,
        notebook: Path,
        target: Path,
        staging: Path,
        cells: list[Cell],
        name: str,
        kept: list[str],
        installed: Future[dict[str, list[str]]],
    ) -> None:
        self.installed = installed
        self.session = session
        self.notebook = notebook
        self.target = target
        self.staging = staging
        self.cells = cells
        self.name = name
        self.kept = kept
        self.warnings: list[str] = []
        self.metrics: dict[str, float] = {}
        self.thresholds: dict[str, dict[str, float]] = {}

    # --- the kernel ----------------------------------------------------------------------------------------

    def probe(self, function: str, request: dict[str, Any], *, what: str) -> dict[str, Any]:
        """Call a probe function in the kernel and read the JSON it writes."""
        from mlship.adapters.jupyter import KernelCallError

        request = {"out": str(self.session.scratch), **request}
        code = (
            f"__import__('sys').modules['_mlship_probe'].{function}(get_ipython(), "
            f"__import__('json').loads({json.dumps(request)!r}))"
        )
        try:
            self.session.call(code, what=what)
        except KernelCallError as error:
            raise self._probe_error(function, error) from error
        output = self.session.scratch / f"{function}.json"
        return dict(json.loads(output.read_text(encoding="utf-8"))) if output.is_file() else {}

    def _probe_error(self, function: str, error: Any) -> MlshipError:
        if function == "verify":
            if "solution.py" in self.kept:
                return NotebookError(
                    f"the existing solution.py does not work with the notebook's new model: {error.ename}: "
                    f"{error.evalue}"[:400],
                    hint="run again with --force to regenerate solution.py and the tests",
                )
            return NotebookError(
                f"the solution.py generated from {self.notebook.name} does not reproduce the model: "
                f"{error.ename}: {error.evalue}"[:400],
                hint="run again with 'mlship --debug …' for the traceback, and report it",
            )
        return NotebookError(
            f"{self.notebook.name}: mlship could not analyse the notebook's kernel ({error.ename}: "
            f"{error.evalue})"[:400],
            hint="run again with 'mlship --debug …' for the traceback, and report it",
        )

    # --- the steps -----------------------------------------------------------------------------------------

    def run(self, named: list[tuple[int, str]], tagged: list[int]) -> None:
        survey = self.probe(
            "survey", {"explicit": [name for _, name in named]}, what="the survey of the kernel"
        )
        self.survey = survey
        # the kernel runs this very interpreter (the usual case): mlship's schema and metrics code runs there,
        # where pandas and scikit-learn are already imported
        self.same_python = survey.get("executable") == sys.executable
        (self.staging / "data").mkdir(parents=True, exist_ok=True)
        candidates = self.candidates(survey)
        if not candidates:
            raise self.no_model(survey)
        explicit, source = self.explicit(survey, candidates, named, tagged)
        try:
            self.choice = choose(candidates, explicit=explicit, explicit_source=source)
        except NotebookError as error:
            error.message = f"{self.notebook.name}: {error.message}"
            raise
        self.warn_if_fitted_on_everything()
        if self.session.kernel_note:
            self.warnings.append(self.session.kernel_note)
        for line in self.session.skipped:
            self.warnings.append(
                f"did not run `{line.line}` (cell {line.cell}): mlship never installs packages"
            )
        for cell in self.cells:
            for magic in cell.magics:
                if magic.startswith(("%run", "%load ")):
                    self.warnings.append(
                        f"cell {cell.number} runs other code with `{magic}`: train() does not include it"
                    )
        self.export()
        self.write_data_files()
        self.write_schema_and_test_data()
        self.write_solution()
        self.verify()
        self.write_requirements()
        self.write_config_and_tests()

    def candidates(self, survey: dict[str, Any]) -> list[Candidate]:
        by_index = {cell.index: cell for cell in self.cells}
        executed = self.session.executed
        found = []
        for entry in survey["candidates"]:
            ordinal = int(entry.get("fit_cell") or 0)
            fit_cell = executed[ordinal - 1] if 0 < ordinal <= len(executed) else -1
            cell = by_index.get(fit_cell)
            statement, loops, loaded = -1, set(), False
            if cell is not None:
                site = fit_site(cell, entry["aliases"])
                statement, loops, loaded = site.statement, site.loop_names, site.loaded
            scratch = all(
                via == "item" or (via == "name" and alias in loops)
                for alias, via in zip(entry["aliases"], entry["vias"], strict=False)
            )
            found.append(
                Candidate(
                    id=entry["id"],
                    aliases=entry["aliases"],
                    vias=entry["vias"],
                    search=entry.get("search"),
                    search_type=entry.get("search_type"),
                    type=entry["type"],
                    description=entry.get("description") or entry["type"],
                    task=entry["task"],
                    classes=entry.get("classes"),
                    features=entry.get("features"),
                    n_features=entry.get("n_features"),
                    proba=bool(entry.get("proba")),
                    decision=bool(entry.get("decision")),
                    fit_cell=fit_cell,
                    fit_statement=statement,
                    scratch=scratch,
                    loaded=loaded,
                    pairs=[Pair(**pair) for pair in entry.get("pairs", [])],
                )
            )
        return found

    def warn_if_fitted_on_everything(self) -> None:
        """A model last fitted on all rows (X, y) has seen the held-out rows: its metrics are optimistic."""
        candidate, heldout = self.choice.candidate, self.choice.heldout
        cell = next((cell for cell in self.cells if cell.index == candidate.fit_cell), None)
        if heldout is None or cell is None:
            return
        everything = {pair["x"] for pair in self.survey.get("pairs", []) if pair["split"] == "all"}
        used = fitted_on(cell, candidate.aliases)
        if used is not None and used in everything:
            self.warnings.append(
                f"`{candidate.name}` was last fitted on `{used}`, all the rows, so it has seen the "
                f"held-out rows of {heldout.x}/{heldout.y} in data/test.csv: the metrics and thresholds are "
                "optimistic; put rows it has not seen into data/test.csv"
            )

    def no_model(self, survey: dict[str, Any]) -> NotebookError:
        details = []
        for entry in survey.get("unfitted", [])[:5]:
            details.append(f"`{entry['name']}` ({entry['type']}) is never fitted")
        for entry in survey.get("unsupervised", [])[:3]:
            details.append(f"`{entry['name']}` ({entry['type']}) is not a classifier or regressor")
        for entry in survey.get("others", [])[:3]:
            details.append(
                f"`{entry['name']}` is a {entry['module']}.{entry['type']}, not a scikit-learn estimator"
            )
        found = f": {'; '.join(details)}" if details else ""
        return NotebookError(
            f"{self.notebook.name}: no fitted scikit-learn compatible classifier or regressor after running "
            f"the notebook{found}",
            hint="fit the model you want to ship in the notebook (e.g. model.fit(X_train, y_train); "
            "cross_val_score only fits copies), then convert again",
        )

    def explicit(
        self,
        survey: dict[str, Any],
        candidates: list[Candidate],
        named: list[tuple[int, str]],
        tagged: list[int],
    ) -> tuple[list[int], str]:
        listed = ", ".join(candidate.label() for candidate in candidates)
        if named:
            index, expression = named[-1]
            resolved = survey.get("explicit", {}).get(expression, {})
            if resolved.get("id") is None:
                why = (
                    resolved.get("error")
                    or f"it is a {resolved.get('type', 'value')}, not a fitted estimator"
                )
                raise NotebookError(
                    f"{self.notebook.name}: cell {index + 1} names the model `{expression}` "
                    f"('# mlship: model={expression}'), but {why}; fitted estimators: {listed}",
                    hint="name one of these in the comment, then convert again",
                )
            return [int(resolved["id"])], f"'# mlship: model={expression}' in cell {index + 1}"
        if tagged:
            index = tagged[-1]
            fitted = [candidate for candidate in candidates if candidate.fit_cell == index]
            if not fitted:
                raise NotebookError(
                    f"{self.notebook.name}: cell {index + 1} is tagged 'mlship-model', but no estimator was "
                    f"fitted in it; fitted estimators: {listed}",
                    hint="tag the cell that fits the model you want (or use '# mlship: model=NAME')",
                )
            chosen = max(fitted, key=lambda candidate: candidate.fit_statement)
            return [chosen.id], f"cell {index + 1} is tagged 'mlship-model'"
        return [], ""

    def export(self) -> None:
        choice = self.choice
        candidate = choice.candidate
        schema_pair = choice.train or next(
            (pair for pair in candidate.pairs if pair.consistent and pair.split != "heldout"), None
        )
        if choice.heldout is None and schema_pair is None:
            raise NotebookError(
                f"{self.notebook.name}: found the model `{candidate.name}` ({candidate.description}), but no "
                "variables holding the rows it takes (X_train/y_train, X_test/y_test, X/y with its columns)",
                hint="keep the model's inputs and labels in variables named like X_test and y_test, "
                "then convert again",
            )
        exported = self.probe(
            "export",
            {
                "candidate": candidate.id,
                "task": candidate.task,
                "pair": choice.heldout.key if choice.heldout else None,
                "train": schema_pair.key if schema_pair else None,
                "artifact": ARTIFACT,
                "test_csv": str(self.staging / "data" / "test.csv"),
                "rows_csv": str(self.session.scratch / "rows.csv"),
                "golden_rows": GOLDEN_ROWS,
                "pickles": not self.same_python,
            },
            what="saving the model",
        )
        sparse = exported.get("sparse")
        if sparse:
            names = ", ".join(f"`{t['name']}` ({t['type']})" for t in self.survey.get("transformers", [])[:3])
            made_by = f", made by {names}" if names else ""
            raise NotebookError(
                f"{self.notebook.name}: the model `{candidate.name}` takes a sparse matrix of "
                f"{sparse['columns']:,} columns ({sparse['x']}{made_by}), which a service cannot receive",
                hint="put the vectorizer/encoder and the model in one Pipeline (make_pipeline(vectorizer, "
                "model)) so that the model takes the raw columns, then convert again",
            )
        dump = exported.get("dump", {})
        if "error" in dump:
            raise NotebookError(
                f"{self.notebook.name}: the model `{candidate.name}` cannot be saved: {dump['error']}"[:400],
                hint="a lambda or an object defined inside a function cannot be pickled: use a function "
                "defined with def at the top level of a cell",
            )
        self.exported = exported
        self.schema_pair = schema_pair
        if exported["input"]["kind"] == "array" and candidate.task and self.survey.get("transformers"):
            names = ", ".join(f"`{t['name']}` ({t['type']})" for t in self.survey["transformers"][:3])
            self.warnings.append(
                f"the model takes a plain array, and the notebook also fitted {names} outside the model: if "
                "those transformed its input, the service expects the transformed values — put them in a "
                "Pipeline with the model to serve raw inputs"
            )

    def verify(self) -> None:
        text_columns = [column["name"] for column in self.schema["columns"] if column["type"] == "string"]
        target = self.schema.get("target") or {}
        if target.get("type") == "string":
            text_columns.append(self.exported["target"])
        shutil.copytree(self.session.scratch / "model", self.staging / "model", dirs_exist_ok=True)
        self.verified = self.probe(
            "verify",
            {
                "solution": str(self.staging / "solution.py"),
                "artifacts": str(self.staging / "model"),
                "test_csv": str(self.rows_csv),
                "text_columns": text_columns,
                "target": self.exported["target"],
                "task": self.choice.candidate.task,
                "golden_rows": GOLDEN_ROWS,
            },
            what="checking solution.py against the notebook's model",
        )
        agreement = self.verified.get("agreement")
        if agreement is not None and agreement < 1.0:
            rows = len(self.verified["labels"])
            self.warnings.append(
                f"solution.py's Model reading data/test.csv predicts {round((1 - agreement) * rows)} of "
                f"{rows} rows differently from the notebook's model on the same rows (types lost in CSV?)"
            )

    def write_config_and_tests(self) -> None:
        from mlship.convert.render import golden_json
        from mlship.convert.writer import (
            DOCKERIGNORE,
            GITIGNORE,
            config_text,
            readme_text,
            refreshed_config,
            tests_text,
        )

        self._metrics()
        candidate = self.choice.candidate
        heldout = self.choice.heldout
        self.test_data = f"{heldout.x}/{heldout.y}: {heldout.rows:,} held-out rows" if heldout else None
        config = config_text(
            name=self.name,
            python=self.survey["python"],
            notebook=self.notebook.name,
            target=self.exported["target"],
            metrics={name: self.thresholds.get(name, {}) for name in self.metric_names},
            achieved=self.metrics,
            positive_label=self.positive,
            data_note=self.test_data or "none yet: put held-out rows with the target column here",
        )
        existing = self.target / "mlship.yaml"
        if existing.is_file() and "solution.py" in self.kept:
            config = refreshed_config(existing.read_text(encoding="utf-8"), config)
        (self.staging / "mlship.yaml").write_text(config, encoding="utf-8")
        tests = self.staging / "tests"
        tests.mkdir(exist_ok=True)
        (tests / "golden.json").write_text(
            golden_json(self.verified["golden"], candidate.task), encoding="utf-8"
        )
        (tests / "test_solution.py").write_text(tests_text(self.notebook.name), encoding="utf-8")
        (self.staging / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
        (self.staging / ".dockerignore").write_text(DOCKERIGNORE, encoding="utf-8")
        if not (self.target / ".github" / "workflows" / "mlship.yml").exists():
            from mlship.project.scaffold import write_ci_files

            write_ci_files(self.staging, self.name, str(self.survey["python"]))
        if "README.md" not in self.kept:
            readme = readme_text(
                name=self.name,
                notebook=Path(os.path.relpath(self.notebook, self.target)).as_posix(),
                variable=self.expression,
                estimator=candidate.description,
                cell=candidate.fit_cell + 1,
                reason=self.choice.reason,
                others=[other.name for other in self.choice.others],
                task=candidate.task,
                target=self.exported["target"],
                schema=self.schema,
                test_data=self.test_data,
                metrics={name: self.thresholds.get(name, {}) for name in self.metric_names},
                achieved=self.metrics,
                warnings=self.warnings,
            )
            (self.staging / "README.md").write_text(readme, encoding="utf-8")

    def result(self, files: list[str], notebook_seconds: float, seconds: float) -> ConvertResult:
        choice: Choice = self.choice
        candidate = choice.candidate
        others = [
            OtherCandidate(
                name=other.name,
                type=other.description or other.type,
                cell=other.fit_cell + 1 if other.fit_cell >= 0 else None,
                tested_on=f"{other.heldout[0].x}/{other.heldout[0].y}" if other.heldout else None,
            )
            for other in choice.others
        ]
        return ConvertResult(
            project=self.target,
            notebook=self.notebook,
            name=self.name,
            files=files,
            kept=self.kept,
            variable=self.expression,
            cell=candidate.fit_cell + 1,
            estimator=candidate.description,
            reason=choice.reason,
            candidates=others,
            task=candidate.task,
            target=self.exported["target"],
            features=list(self.spec.columns),
            test_data=self.test_data,
            metrics=self.metrics,
            thresholds=self.thresholds,
            warnings=self.warnings,
            kernel=self.session.kernel_name,
            seconds=round(seconds, 3),
            notebook_seconds=round(notebook_seconds, 3),
        )
