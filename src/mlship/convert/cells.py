"""Notebook cells as Python: IPython syntax turned into comments, the user's explicit model choice, and where
in a cell an estimator is fitted.

`clean_cell` keeps the code of `%%time`/`%%capture` cells and of `%time stmt`, and turns every other magic
and shell escape (`%matplotlib inline`, `!pip install x`, `files = !ls`, `df?`) into a comment — never into
the `get_ipython()` calls of nbconvert's script export, which crash under plain Python.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

# Cell magics whose body is ordinary Python that runs (the magic only times or captures it).
CODE_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "memit", "debug", "snakeviz"})
# Line magics that run the rest of the line as code.
CODE_LINE_MAGICS = frozenset({"time", "prun", "memit"})
FIT_METHODS = frozenset({"fit", "fit_transform", "fit_predict", "partial_fit", "fit_resample"})
MODEL_TAG = "mlship-model"
_MARKER = re.compile(r"#\s*mlship\s*:\s*model\s*=\s*([^\s#]+)")
_MAGIC_ASSIGN = re.compile(r"^(\s*)([A-Za-z_][\w\s,\[\]().]*?)\s*=\s*([!%].*)$")
_HELP = re.compile(r"^\s*(\?\??[\w.]+|[\w.\[\]'\"()]+\?\??)\s*$")


@dataclass
class Cell:
    """One code cell: its place in the notebook, its source, and the Python it becomes."""

    index: int
    source: str
    python: str
    magics: list[str] = field(default_factory=list)
    tree: ast.Module | None = None
    error: str | None = None

    @property
    def number(self) -> int:
        """1-based, as people count cells."""
        return self.index + 1


def _comment(line: str) -> str:
    indent = line[: len(line) - len(line.lstrip())]
    text = line.strip()
    return f"{indent}pass  # {text}" if indent else f"# {text}"


def clean_cell(index: int, source: str) -> Cell:
    """Turn a cell's IPython source into Python: magics and shell escapes become comments."""
    lines = source.splitlines()
    magics: list[str] = []
    first = next((position for position, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].lstrip().startswith("%%"):
        header = lines[first].strip()
        name = header[2:].split(maxsplit=1)[0] if len(header) > 2 else ""
        magics.append(header)
        if name in CODE_CELL_MAGICS:
            lines = [*lines[:first], f"# {header}", *lines[first + 1 :]]
        else:
            lines = [f"# {line}" if line.strip() else line for line in lines]
            return _parsed(Cell(index=index, source=source, python="\n".join(lines), magics=magics))
    output: list[str] = []
    continuing = False
    for line in lines:
        stripped = line.strip()
        if continuing:
            magics[-1] += " " + stripped
            output.append(_comment(line))
            continuing = stripped.endswith("\\")
            continue
        if stripped.startswith("get_ipython()"):
            magics.append(stripped)
            output.append(_comment(line))
            continue
        if stripped.startswith(("%", "!")) and not stripped.startswith(("%%", "!=")):
            magics.append(stripped)
            name = stripped[1:].split(maxsplit=1)[0] if len(stripped) > 1 else ""
            rest = stripped[1 + len(name) :].strip()
            if stripped.startswith("%") and name in CODE_LINE_MAGICS and rest:
                indent = line[: len(line) - len(line.lstrip())]
                output.append(f"{indent}{rest}  # {stripped.split()[0]}")
            else:
                output.append(_comment(line))
            continuing = stripped.endswith("\\")
            continue
        assigned = _MAGIC_ASSIGN.match(line)
        if assigned and not _is_python(line):
            magic = assigned.group(3).strip()
            magics.append(stripped)
            name = magic[1:].split(maxsplit=1)[0] if len(magic) > 1 else ""
            rest = magic[1 + len(name) :].strip()
            if magic.startswith("%") and name in CODE_LINE_MAGICS and rest:
                output.append(f"{assigned.group(1)}{assigned.group(2)} = {rest}  # %{name}")
            else:
                output.append(_comment(line))
            continue
        if _HELP.match(line) and not _is_python(line):
            magics.append(stripped)
            output.append(_comment(line))
            continue
        output.append(line)
    return _parsed(Cell(index=index, source=source, python="\n".join(output), magics=magics))


def _is_python(line: str) -> bool:
    try:
        ast.parse(line.strip())
    except SyntaxError:
        return False
    return True


def _parsed(cell: Cell) -> Cell:
    try:
        cell.tree = ast.parse(cell.python)
    except SyntaxError as error:
        cell.error = f"line {error.lineno}: {error.msg}"
    return cell


def explicit_choices(notebook: Any) -> tuple[list[tuple[int, str]], list[int]]:
    """The user's own choice: `# mlship: model=NAME` comments (cell index, NAME) and cells tagged
    `mlship-model` (their indexes)."""
    named: list[tuple[int, str]] = []
    tagged: list[int] = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        named.extend((index, match.group(1)) for match in _MARKER.finditer(str(cell.source)))
        if MODEL_TAG in (cell.get("metadata", {}).get("tags") or []):
            tagged.append(index)
    return named, tagged


# --- names and statements -----------------------------------------------------------------------------------


def root_name(node: ast.AST) -> str | None:
    """`df` for df, df.a, df['a'], df.a.b(), df[0].fit(...)."""
    while True:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        else:
            return None


def alias_root(alias: str) -> str | None:
    """The variable an alias like `grid.best_estimator_` or `models['rf']` starts from."""
    try:
        tree = ast.parse(alias, mode="eval")
    except SyntaxError:
        return None
    return root_name(tree.body)


def target_names(target: ast.AST) -> set[str]:
    """Root names an assignment target binds or mutates (`a, b`, `df['x']`, `self.y`, `*rest`)."""
    if isinstance(target, (ast.Tuple, ast.List)):
        names: set[str] = set()
        for element in target.elts:
            names |= target_names(element)
        return names
    root = root_name(target)
    return {root} if root else set()


def _fits(node: ast.AST, roots: set[str]) -> bool:
    """Whether a statement fits (or rebinds, or hands to a function) one of the named estimators."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.Call):
            func = inner.func
            if (
                isinstance(func, ast.Attribute)
                and func.attr in FIT_METHODS
                and root_name(func.value) in roots
            ):
                return True
            arguments = [*inner.args, *(keyword.value for keyword in inner.keywords)]
            if any(isinstance(argument, ast.Name) and argument.id in roots for argument in arguments):
                return True
        if isinstance(inner, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = inner.targets if isinstance(inner, ast.Assign) else [inner.target]
            if any(target_names(target) & roots for target in targets):
                return True
        if isinstance(inner, (ast.For, ast.AsyncFor)):
            if target_names(inner.target) & roots:
                return True
            # `for m in models: m.fit(…)` fits the elements of `models`
            if _loads(inner.iter) & roots and any(
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr in FIT_METHODS
                for call in ast.walk(inner)
            ):
                return True
    return False


def _loads(node: ast.AST) -> set[str]:
    return {inner.id for inner in ast.walk(node) if isinstance(inner, ast.Name)}


LOAD_CALLS = frozenset({"load", "loads", "load_model", "read_pickle"})


def fitted_on(cell: Cell, aliases: list[str]) -> str | None:
    """The variable passed as X to the last `.fit(X, …)` of one of `aliases` in the cell, if it is a name."""
    roots = {root for root in (alias_root(alias) for alias in aliases) if root}
    found = None
    for node in ast.walk(cell.tree) if cell.tree is not None else []:
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in FIT_METHODS
            and root_name(node.func.value) in roots
            and node.args
            and isinstance(node.args[0], ast.Name)
        ):
            found = node.args[0].id
    return found


@dataclass
class FitSite:
    """Where in its cell an estimator got its final state."""

    statement: int  # index of the top-level statement in the cell (-1: not found)
    line: int
    loop_names: set[str]  # aliases that are `for` targets in the cell (scratch variables)
    loaded: bool = False  # the statement loads a saved model (joblib.load, pickle.load) rather than fits one


def fit_site(cell: Cell, aliases: list[str]) -> FitSite:
    """The last top-level statement of the cell that fits, rebinds or hands over one of `aliases`."""
    roots = {root for root in (alias_root(alias) for alias in aliases) if root}
    if cell.tree is None:
        return FitSite(statement=-1, line=0, loop_names=set())
    loops: set[str] = set()
    for node in ast.walk(cell.tree):
        if isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            loops |= target_names(node.target) & roots
    found = FitSite(statement=-1, line=0, loop_names=loops)
    for position, statement in enumerate(cell.tree.body):
        if _fits(statement, roots):
            loaded = any(
                isinstance(call, ast.Call)
                and (call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", ""))
                in LOAD_CALLS
                for call in ast.walk(statement)
            ) and not any(
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr in FIT_METHODS
                for call in ast.walk(statement)
            )
            found = FitSite(statement=position, line=statement.lineno, loop_names=loops, loaded=loaded)
    return found
