"""requirements.in from what solution.py imports and what the saved model is made of, mapped to the
distributions (and versions) installed where the notebook ran."""

from __future__ import annotations

import ast
import re

# Always needed by the generated solution.py.
OWN_MODULES = ("joblib", "numpy", "pandas")
_PUBLIC_VERSION = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")


def imported_modules(source: str) -> list[str]:
    """Top-level module names imported anywhere in `source` (absolute imports only), in order."""
    modules: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            root = name.split(".")[0]
            if root not in modules:
                modules.append(root)
    return modules


def requirement_lines(
    modules: list[str],
    distributions: dict[str, list[list[str]]],
    *,
    stdlib: set[str],
    local: set[str],
) -> tuple[list[str], list[str]]:
    """`name==version` lines for the distributions providing `modules`, and warnings for modules no installed
    distribution provides. `distributions` maps a module to its [distribution, version] pairs."""
    lines: dict[str, str] = {}
    warnings: list[str] = []
    for module in modules:
        if module in stdlib or module in local or module in ("solution", "__main__", "__future__"):
            continue
        provided = distributions.get(module) or []
        if not provided:
            warnings.append(
                f"no installed distribution provides the module '{module}': add it to requirements.in by hand"
            )
            continue
        name, version = provided[0][0], provided[0][1]
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in lines:
            continue
        lines[key] = f"{name}=={version}" if _PUBLIC_VERSION.match(version or "") else name
    return sorted(lines.values(), key=str.lower), warnings


def requirements_text(lines: list[str], notebook: str, python: str) -> str:
    """The file: a header saying where the pins come from, then one requirement per line."""
    header = (
        f"# What solution.py and the saved model need at serving time, pinned to the versions the notebook\n"
        f"# {notebook} ran with (Python {python}). `mlship build` freezes these, with hashes.\n"
    )
    return header + "".join(f"{line}\n" for line in lines)
