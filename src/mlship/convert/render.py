"""solution.py as text: the notebook's imports at the top, its classes/functions the model needs, `train()`,
`prepare()` (rows → the input the notebook's model saw), `class Model` and `main()` (retrain + re-pin)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlship.convert.training import OWN_IMPORTS, TrainCode, indent, rewrite_paths


@dataclass
class InputSpec:
    """How the service's rows become the model's input."""

    kind: str  # frame, array or text
    columns: list[str]
    labels: list[Any] | None  # the notebook's own column labels when they are not these strings (e.g. ints)
    dtypes: dict[str, str]
    categories: dict[str, list[Any]]
    array_dtype: str | None = None


ARGMAX_MODELS = [
    "DecisionTreeClassifier",
    "ExtraTreesClassifier",
    "HistGradientBoostingClassifier",
    "LogisticRegression",
    "RandomForestClassifier",
]


def _literal(value: Any) -> str:
    """A Python literal, wrapped over lines when long."""
    text = repr(value)
    if len(text) <= 90 or not isinstance(value, (list, dict)):
        return text
    if isinstance(value, list):
        return "[\n" + "".join(f"    {item!r},\n" for item in value) + "]"
    return "{\n" + "".join(f"    {key!r}: {item!r},\n" for key, item in value.items()) + "}"


def _prepare(spec: InputSpec) -> str:
    if spec.kind == "text":
        return (
            "def prepare(rows: pd.DataFrame) -> pd.Series:\n"
            '    """The rows as the notebook\'s model saw them: one text per row."""\n'
            '    return pd.DataFrame(rows)[FEATURES[0]].fillna("").astype(str)\n'
        )
    if spec.kind == "array":
        dtype = spec.array_dtype or "float64"
        return (
            "def prepare(rows: pd.DataFrame) -> np.ndarray:\n"
            '    """The rows as the notebook\'s model saw them: a plain array of these columns."""\n'
            f"    return pd.DataFrame(rows)[FEATURES].to_numpy(dtype={dtype!r})\n"
        )
    relabel = "    frame = frame.set_axis(NOTEBOOK_COLUMNS, axis=1)\n" if spec.labels is not None else ""
    return (
        "def _exact_dtypes() -> list[Any] | None:\n"
        '    """DTYPES as dtype objects in FEATURES order (rows with exactly these need no cast); None when\n'
        '    every request is cast: a category or object column, or a dtype this pandas does not know."""\n'
        '    if any(dtype in ("category", "object") for dtype in DTYPES.values()):\n'
        "        return None\n"
        "    try:\n"
        "        return [pd.api.types.pandas_dtype(DTYPES[column]) for column in FEATURES]\n"
        "    except (KeyError, TypeError):\n"
        "        return None\n"
        "\n\n"
        "EXACT_DTYPES = _exact_dtypes()\n"
        "\n\n"
        "def prepare(rows: pd.DataFrame) -> pd.DataFrame:\n"
        '    """The rows as the notebook\'s model saw them: these columns, in this order, with its dtypes\n'
        '    (JSON and CSV lose dtypes: "01" vs 1, category, bool). Rows that already are exactly that\n'
        "    (the service's follow schema.json) are passed on as they are: casting column by column\n"
        '    costs more than the model, and so would comparing dtypes by name."""\n'
        "    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)\n"
        "    if frame.columns.tolist() != FEATURES or frame.dtypes.tolist() != EXACT_DTYPES:\n"
        "        frame = frame[FEATURES].copy()\n"
        "        for column, dtype in DTYPES.items():\n"
        "            frame[column] = _cast(frame[column], dtype)\n"
        f"{relabel}"
        "    return frame\n"
        "\n\n"
        "def _cast(values: pd.Series, dtype: str) -> pd.Series:\n"
        '    if dtype == "category":\n'
        "        return values.astype(pd.CategoricalDtype(CATEGORIES[str(values.name)]))\n"
        '    if dtype.lower().startswith("float"):\n'
        '        return pd.to_numeric(values, errors="coerce").astype(dtype)\n'
        '    if dtype.lower().startswith(("int", "uint")):\n'
        '        numbers = pd.to_numeric(values, errors="coerce")\n'
        '        return numbers.astype(dtype) if numbers.notna().all() or dtype[0] in "IU" else numbers\n'
        '    if dtype in ("bool", "boolean"):\n'
        '        flags = values.map(lambda v: v if isinstance(v, bool) else str(v).lower() in ("true", "1"))'
        "\n"
        '        return flags.where(values.notna()).astype(dtype if values.notna().all() else "boolean")\n'
        '    if dtype.startswith("datetime"):\n'
        '        return pd.to_datetime(values, errors="coerce")\n'
        '    if dtype in ("str", "string"):\n'
        "        return values.astype(dtype)\n"
        '    if dtype == "object":\n'
        "        return values.astype(object).where(values.notna(), np.nan)\n"
        "    return values\n"
    )


def _model_class(task: str, proba: bool, decision: bool, has_defs: bool) -> str:
    lines = [
        "class Model:",
        '    """What the service runs: the notebook\'s fitted model, loaded once, predicting DataFrames."""',
        "",
        "    def load(self, artifacts: Path) -> None:",
    ]
    if has_defs:
        lines.append(
            "        # the model refers to classes/functions defined above: unpickle them from this module"
        )
        lines.append('        sys.modules.setdefault("solution", sys.modules[__name__])')
    lines.append("        self.estimator = joblib.load(Path(artifacts) / MODEL_FILE)")
    if task != "regression":
        lines.append("        self.classes_ = list(self.estimator.classes_)")
    lines += [
        "",
        "    def predict(self, rows: pd.DataFrame) -> list[Any]:",
        "        return list(np.asarray(self.estimator.predict(prepare(rows))).tolist())",
    ]
    if proba:
        lines += [
            "",
            "    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:",
            "        return np.asarray(self.estimator.predict_proba(prepare(rows)))",
            "",
            "    def predict_with_proba(self, rows: pd.DataFrame) -> tuple[list[Any], np.ndarray]:",
            '        """predict() and predict_proba() together, from one pass of the model when its',
            '        predict() is the argmax of predict_proba() (ARGMAX_MODELS), as the service asks."""',
            "        frame = prepare(rows)",
            "        proba = np.asarray(self.estimator.predict_proba(frame))",
            '        final = getattr(self.estimator, "_final_estimator", self.estimator)',
            "        if type(final).__name__ not in ARGMAX_MODELS or proba.ndim != 2:",
            "            return list(np.asarray(self.estimator.predict(frame)).tolist()), proba",
            "        return list(np.asarray(self.estimator.classes_)[proba.argmax(axis=1)].tolist()), proba",
        ]
    elif decision and task != "regression":
        lines += [
            "",
            "    def decision_function(self, rows: pd.DataFrame) -> np.ndarray:",
            '        """Scores for roc_auc (this model has no predict_proba)."""',
            "        return np.asarray(self.estimator.decision_function(prepare(rows)))",
        ]
    return "\n".join(lines) + "\n"


_MAIN = '''def main() -> None:
    """Retrain with train(), save the model to model/, and re-pin tests/golden.json on the new model."""
    estimator = train()
    (HERE / "model").mkdir(exist_ok=True)
    joblib.dump(estimator, HERE / "model" / MODEL_FILE)
    golden_file = HERE / "tests" / "golden.json"
    if golden_file.is_file():
        golden = json.loads(golden_file.read_text(encoding="utf-8"))
        model = Model()
        model.load(HERE / "model")
        rows = pd.DataFrame(golden["rows"], columns=golden["columns"])
        golden["predictions"] = model.predict(rows)
        if golden.get("score_kind") == "proba":
            golden["scores"] = model.predict_proba(rows).tolist()
        elif golden.get("score_kind") == "decision":
            golden["scores"] = model.decision_function(rows).tolist()
        golden_file.write_text(json.dumps(golden, indent=1) + "\\n", encoding="utf-8")
    print(f"trained {type(estimator).__name__} -> model/{MODEL_FILE}", file=sys.stderr)


if __name__ == "__main__":
    # run as module `solution`, so that what the model pickles refers to `solution`, not `__main__`
    sys.path.insert(0, str(HERE))
    import solution

    solution.main()
'''


@dataclass
class SolutionText:
    """The rendered file and facts about it."""

    text: str
    paths_rewritten: int


def render_solution(
    *,
    notebook: str,
    expression: str,
    description: str,
    cell: int,
    task: str,
    target: str,
    spec: InputSpec,
    code: TrainCode | None,
    proba: bool,
    decision: bool,
    data_mapping: dict[str, str],
    has_defs: bool,
) -> SolutionText:
    """solution.py for the chosen model. `code` is None when the notebook's training code could not be
    extracted (train() then says so)."""
    header = (
        f'"""The model from {notebook}: `{expression}` ({description}), fitted in cell {cell}.\n\n'
        "Generated by `mlship init --from-notebook`. mlship calls `Model().load(artifacts)` once, then\n"
        "`predict(rows)` with a pandas DataFrame whose columns are those of schema.json. `train()` re-runs\n"
        "the notebook's training code (display and plots left out); `python solution.py` retrains, saves\n"
        "model/ and re-pins tests/golden.json. Edit freely: mlship never overwrites this file without\n"
        "--force.\n"
        '"""\n'
    )
    notebook_imports = [line for line in code.imports if line not in OWN_IMPORTS] if code else []
    parts = [header, "\n".join(OWN_IMPORTS[:4]) + "\n\n" + "\n".join(OWN_IMPORTS[4:])]
    if notebook_imports:
        parts.append("# the notebook's imports\n" + "\n".join(notebook_imports))
    parts.append(
        "HERE = Path(__file__).resolve().parent\n"
        'DATA_DIR = HERE / "data" / "notebook"  # the files the notebook read'
    )
    parts.append(f'MODEL_FILE = "model.joblib"\nTARGET = {target!r}')
    parts.append(
        "# the columns the service receives (schema.json), in the order the model takes them\n"
        f"FEATURES = {_literal(spec.columns)}"
    )
    if spec.kind == "frame":
        parts.append(f"# the dtypes the notebook's model saw\nDTYPES = {_literal(spec.dtypes)}")
        parts.append(f"CATEGORIES: dict[str, list[Any]] = {_literal(spec.categories)}")
        if spec.labels is not None:
            parts.append(
                f"# the notebook's own column labels (not text)\nNOTEBOOK_COLUMNS = {_literal(spec.labels)}"
            )
    rewritten = 0
    if code is not None and code.definitions:
        parts.append("\n# --- defined in the notebook; the saved model refers to them\n")
        parts.append("\n\n\n".join(code.definitions))
    parts.append("\n" + _train(code, data_mapping, expression))
    if code is not None:
        _, rewritten = rewrite_paths(code.body, data_mapping)
    parts.append("\n" + _prepare(spec))
    if proba:
        parts.append(
            "# scikit-learn classifiers whose predict() is the argmax of predict_proba()\n"
            f"ARGMAX_MODELS = {_literal(ARGMAX_MODELS)}"
        )
    parts.append("\n" + _model_class(task, proba, decision, has_defs))
    parts.append("\n" + _MAIN)
    text = "\n".join(part if part.endswith("\n") else part + "\n" for part in parts)
    return SolutionText(text=_tidy(text), paths_rewritten=rewritten)


def _train(code: TrainCode | None, data_mapping: dict[str, str], expression: str) -> str:
    if code is None:
        return (
            "def train(data_dir: Path = DATA_DIR) -> Any:\n"
            '    """The notebook\'s training code could not be extracted: write it here."""\n'
            f'    raise NotImplementedError("copy the code that fits `{expression}` from the notebook")\n'
        )
    body, _ = rewrite_paths(code.body, data_mapping)
    cells = ", ".join(str(index + 1) for index in code.cells)
    doc = (
        f'    """Re-run the notebook\'s training code and return the fitted model, `{code.returned}`.\n\n'
        f"    From cells {cells}, without display, plots and file writes; the files the notebook read\n"
        '    are under data_dir."""\n'
    )
    magics = ""
    if code.magics:
        shown = "".join(f"    #   {magic}\n" for magic in code.magics[:40])
        magics = "    # The notebook's magics and shell commands (not run here):\n" + shown
    return (
        "def train(data_dir: Path = DATA_DIR) -> Any:\n"
        + doc
        + magics
        + indent(body)
        + f"\n    return {code.returned}\n"
    )


def _tidy(text: str) -> str:
    """At most two blank lines in a row."""
    lines: list[str] = []
    blanks = 0
    for line in text.splitlines():
        blanks = blanks + 1 if not line.strip() else 0
        if blanks <= 2:
            lines.append(line.rstrip())
    return "\n".join(lines).rstrip() + "\n"


def golden_json(golden: dict[str, Any], task: str) -> str:
    """tests/golden.json: the rows, and what the notebook's model predicted for them."""
    payload = {
        "about": "Predictions of the notebook's model on held-out rows; tests/test_solution.py compares the "
        "loaded model with them. `python solution.py` re-pins them after retraining.",
        "task": task,
        **golden,
    }
    lines = []
    for key, value in payload.items():
        if isinstance(value, list) and value and isinstance(value[0], list):
            inner = ",\n".join(f"  {json.dumps(item)}" for item in value)
            lines.append(f" {json.dumps(key)}: [\n{inner}\n ]")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"
