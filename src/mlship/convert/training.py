"""The sliced statements → the text of `train(data_dir)`: rendering, module-level definitions, hoisted
imports, and the data paths rewritten relative to the data folder (the analysis is in `source.py`)."""

from __future__ import annotations

import ast
import io
import posixpath
import tokenize
from dataclasses import dataclass

from mlship.convert.cells import Cell, alias_root, fit_site
from mlship.convert.source import (
    RESERVED,
    Statement,
    _imported,
    _loads,
    backward_slice,
    notebook_context,
    statements,
)

# --- the end of training ------------------------------------------------------------------------------------


@dataclass
class TrainCode:
    """train()'s body and the parts of solution.py that come from the notebook."""

    imports: list[str]
    definitions: list[str]
    body: str
    returned: str
    cells: list[int]
    magics: list[str]
    warnings: list[str]


def _segment(lines: list[str], node: ast.stmt) -> str:
    assert node.end_lineno is not None
    return "\n".join(lines[node.lineno - 1 : node.end_lineno])


def _alone_on_its_lines(lines: list[str], node: ast.stmt) -> bool:
    """Whether nothing else shares the statement's first and last lines (no `a = 1; b = 2`)."""
    assert node.end_lineno is not None and node.end_col_offset is not None
    before = lines[node.lineno - 1].encode()[: node.col_offset].decode(errors="replace")
    after = lines[node.end_lineno - 1].encode()[node.end_col_offset :].decode(errors="replace").strip()
    return not before.strip() and (not after or after.startswith("#"))


def render_statement(statement: Statement) -> str:
    """The statement as the user wrote it (comments kept), minus removed leaves; re-generated when a removed
    leaf shares a line with kept code."""
    lines = statement.cell.python.splitlines()
    node, pruned = statement.node, statement.pruned
    assert pruned is not None
    if not statement.removed:
        return _segment(lines, node) if _alone_on_its_lines(lines, node) else ast.unparse(pruned)
    if not _alone_on_its_lines(lines, node) or not all(
        _alone_on_its_lines(lines, leaf) for leaf in statement.removed
    ):
        return ast.unparse(pruned)
    assert node.end_lineno is not None
    drop: set[int] = set()
    passes: dict[int, str] = {}
    for leaf in statement.removed:
        assert leaf.end_lineno is not None
        drop |= set(range(leaf.lineno, leaf.end_lineno + 1))
    for first in statement.emptied:
        indent = lines[first.lineno - 1][: first.col_offset]
        passes[first.lineno] = f"{indent}pass"
    rendered = []
    for number in range(node.lineno, node.end_lineno + 1):
        if number in passes:
            rendered.append(passes[number])
        elif number not in drop:
            rendered.append(lines[number - 1])
    return "\n".join(rendered)


def _comments_above(statement: Statement) -> list[str]:
    lines = statement.cell.python.splitlines()
    found: list[str] = []
    number = statement.node.lineno - 2
    while (
        number >= 0
        and lines[number].strip().startswith("#")
        and not lines[number].strip().startswith(("# %", "# !"))
    ):
        found.append(lines[number].rstrip())
        number -= 1
    return list(reversed(found))


def _indent(text: str, prefix: str = "    ") -> str:
    """Indent code, leaving the inside of multi-line strings alone (indenting them would change them)."""
    inside: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.STRING and token.start[0] != token.end[0]:
                inside |= set(range(token.start[0] + 1, token.end[0] + 1))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return "\n".join(
        line if number in inside or not line.strip() else prefix + line
        for number, line in enumerate(text.splitlines(), start=1)
    )


def _free_names(node: ast.stmt) -> set[str]:
    """Names a def/class reads that it does not bind itself (its parameters, its own assignments)."""
    bound: set[str] = set()
    for inner in ast.walk(node):
        if isinstance(inner, ast.arg):
            bound.add(inner.arg)
        elif isinstance(inner, ast.Name) and not isinstance(inner.ctx, ast.Load):
            bound.add(inner.id)
        elif isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and inner is not node:
            bound.add(inner.name)
        elif isinstance(inner, (ast.Import, ast.ImportFrom)):
            bound |= set(_imported(inner))
    return _loads(node) - bound - set(dir(__builtins__)) - {"__class__", "self", "cls"}


def _literal_assignment(statement: Statement) -> bool:
    node = statement.pruned
    if not isinstance(node, ast.Assign) or not all(isinstance(t, ast.Name) for t in node.targets):
        return False
    try:
        ast.literal_eval(node.value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def module_level(program: list[Statement], upto: int, names: list[str]) -> tuple[list[Statement], list[str]]:
    """The defs (and literal constants) the saved model needs at module level, with their dependencies.

    Returns them in notebook order, and warnings for names they use that solution.py cannot provide.
    """
    chosen: dict[int, Statement] = {}
    warnings: list[str] = []
    queue = list(names)
    seen: set[str] = set()
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        for position in range(upto, -1, -1):
            statement = program[position]
            node = statement.pruned
            if node is None or name not in statement.binds:
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                break
            definition = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            if definition or _literal_assignment(statement):
                chosen[position] = statement
                if definition:
                    queue.extend(_free_names(node))
            else:
                warnings.append(
                    f"`{name}` (cell {statement.cell.number}) is used by code the saved model needs, but it "
                    "is computed from the notebook's data: define it in solution.py at module level"
                )
            break
    return [chosen[position] for position in sorted(chosen)], warnings


OWN_IMPORTS = (
    "import json",
    "import sys",
    "from pathlib import Path",
    "from typing import Any",
    "import joblib",
    "import numpy as np",
    "import pandas as pd",
)


def _hoistable(node: ast.stmt | None) -> bool:
    """A top-level import that can move to the top of solution.py (not one rebinding its own names)."""
    if not isinstance(node, (ast.Import, ast.ImportFrom)):
        return False
    if ast.unparse(node) in OWN_IMPORTS:
        return True
    return not set(_imported(node)) & RESERVED


def training_code(
    cells: list[Cell],
    fit_cell: int,
    aliases: list[str],
    model_defs: list[str],
) -> TrainCode:
    """Slice the notebook from its start to where the chosen estimator was last fitted.

    `aliases` name the estimator (`model`, `grid.best_estimator_`, `models['rf']`); `model_defs` are the
    notebook's classes/functions the saved model refers to (they go to module level).
    """
    context = notebook_context(cells)
    program = statements(cells, context)
    warnings = [
        f"cell {cell.number} could not be parsed ({cell.error}); it is left out of train()"
        for cell in cells
        if cell.error
    ]
    fit = next((cell for cell in cells if cell.index == fit_cell), None)
    if fit is None or fit.tree is None or not fit.tree.body:
        raise ValueError(f"cell {fit_cell + 1} cannot be analysed")
    site = fit_site(fit, aliases)
    position = site.statement if site.statement >= 0 else len(fit.tree.body) - 1
    end = next(
        number
        for number, statement in enumerate(program)
        if statement.cell is fit and statement.position == position
    )
    while end > 0 and program[end].pruned is None:
        end -= 1
    roots = {root for root in (alias_root(alias) for alias in aliases) if root}
    kept = backward_slice(program, end, roots)
    bound_at_end = program[end].binds
    bound = set().union(*(statement.binds for statement in kept)) if kept else set()
    returned = next(
        (alias for alias in aliases if alias_root(alias) in bound_at_end),
        next((alias for alias in aliases if alias_root(alias) in bound), aliases[0]),
    )
    defs, def_warnings = module_level(program, end, model_defs)
    warnings.extend(def_warnings)
    moved = {id(statement) for statement in defs}
    imports: list[str] = []
    body: list[str] = []
    shown_cells: list[int] = []
    for statement in kept:
        pruned = statement.pruned
        if pruned is not None and any(isinstance(node, ast.Global) for node in ast.walk(pruned)):
            warnings.append(
                f"cell {statement.cell.number} declares `global` names: inside train() they are not the "
                "notebook's variables any more; check train() by running it"
            )
        if id(statement) in moved:
            continue
        if _hoistable(statement.pruned):
            assert statement.pruned is not None
            text = ast.unparse(statement.pruned)
            if text not in imports and text not in OWN_IMPORTS:
                imports.append(text)
            continue
        if not shown_cells or shown_cells[-1] != statement.cell.index:
            shown_cells.append(statement.cell.index)
            body.append(("\n" if body else "") + f"# --- cell {statement.cell.number}")
        body.extend(_comments_above(statement))
        body.append(render_statement(statement))
    for statement in defs:
        if statement.pruned is None:
            continue
        for name in sorted(_free_names(statement.pruned) & set(context.modules)):
            origin = next(
                (
                    other.pruned
                    for other in program
                    if isinstance(other.pruned, (ast.Import, ast.ImportFrom)) and name in other.binds
                ),
                None,
            )
            if origin is not None and _hoistable(origin):
                text = ast.unparse(origin)
                if text not in imports and text not in OWN_IMPORTS:
                    imports.append(text)
    return TrainCode(
        imports=imports,
        definitions=[render_statement(statement) for statement in defs],
        body="\n".join(body),
        returned=returned,
        cells=shown_cells,
        magics=[f"cell {cell.number}: {magic}" for cell in cells for magic in cell.magics],
        warnings=warnings,
    )


# --- data paths ---------------------------------------------------------------------------------------------


def rewrite_paths(code: str, mapping: dict[str, str], variable: str = "data_dir") -> tuple[str, int]:
    """Replace string literals naming the notebook's data files (or their folders, or glob patterns in them)
    with `str(data_dir / "…")`. `mapping` maps a normalised path as the notebook wrote it to its place under
    data_dir. Returns the new code and how many literals were replaced."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code, 0
    folders: dict[str, str] = {}
    for written, destination in mapping.items():
        parts = written.split("/")
        target = destination.split("/")
        for depth in range(1, len(parts)):
            folders.setdefault("/".join(parts[:depth]), "/".join(target[: len(target) - len(parts) + depth]))
    replacements: list[tuple[int, int, int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        if node.lineno != node.end_lineno or node.end_col_offset is None:
            continue
        value = node.value
        if "://" in value or not value.strip():
            continue
        normal = posixpath.normpath(value.replace("\\", "/"))
        while normal.startswith("../"):
            normal = normal[3:]
        normal = normal.removeprefix("./")
        placed: str | None = mapping.get(normal) or folders.get(normal.rstrip("/"))
        if placed is None and any(char in normal for char in "*?["):
            head = normal.split("*")[0].split("?")[0].split("[")[0].rstrip("/")
            directory = folders.get(head) if head else None
            if directory is not None:
                placed = directory + normal[len(head) :]
        if placed is None:
            continue
        suffix = ' + "/"' if value.endswith(("/", "\\")) else ""
        replacements.append(
            (node.lineno, node.col_offset, node.end_col_offset, f'str({variable} / "{placed}"){suffix}')
        )
    if not replacements:
        return code, 0
    lines = code.splitlines()
    for line, start, stop, text in sorted(replacements, reverse=True):
        raw = lines[line - 1].encode()
        lines[line - 1] = (raw[:start] + text.encode() + raw[stop:]).decode()
    return "\n".join(lines), len(replacements)


def indent(text: str, prefix: str = "    ") -> str:
    """Public wrapper: indent code without touching multi-line strings."""
    return _indent(text, prefix)
