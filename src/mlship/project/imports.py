"""The project's own modules that solution.py imports, found by reading the code (nothing is imported).

`mlship build` learns them by importing solution.py in a child interpreter (gate/solution_check.py), which
also proves the import works; that costs the import of pandas and the model's libraries, about 1.5 s.
`mlship serve` reads them here instead, in milliseconds, and lets the service's own import of solution.py
be the proof (a failure is then explained by the child check, see build/serve.py).

A module is local when `<dir>/<name>.py` or `<dir>/<name>/__init__.py` exists in the folder of solution.py
or the project root (the child check's sys.path). Imports anywhere in a file count (inside functions too:
they run at predict time), and local modules are followed to what they import. A package ships all its
Python files, as the child check ships it.
"""

from __future__ import annotations

import ast
from pathlib import Path


def _imported_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def is_local(file: Path, root: Path) -> bool:
    """Whether `file` is the project's own: under `root`, not in a hidden folder or an installed package."""
    try:
        parts = file.relative_to(root).parts
    except ValueError:
        return False
    return not any(part.startswith(".") or part in {"site-packages", "dist-packages"} for part in parts)


def package_files(package: Path, root: Path) -> list[Path]:
    """Every Python file of a local package (a package ships whole: its submodules load lazily)."""
    return sorted(
        file for file in package.rglob("*.py") if "__pycache__" not in file.parts and is_local(file, root)
    )


def local_modules(solution: Path, root: Path) -> list[str]:
    """The local modules solution.py imports, directly or through each other (POSIX paths relative to
    `root`, solution itself excluded). Raises SyntaxError when a file does not parse."""
    root, solution = root.resolve(), solution.resolve()
    folders = list(dict.fromkeys([solution.parent, root]))
    found: set[Path] = set()
    todo = [solution]
    while todo:
        file = todo.pop()
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        for name in sorted(_imported_names(tree)):
            for folder in folders:
                module, package = folder / f"{name}.py", folder / name / "__init__.py"
                files = (
                    [module]
                    if module.is_file()
                    else package_files(package.parent, root)
                    if package.is_file()
                    else []
                )
                if files:
                    break
            for candidate in files:
                if is_local(candidate, root) and candidate not in found and candidate != solution:
                    found.add(candidate)
                    todo.append(candidate)
    return sorted(file.relative_to(root).as_posix() for file in found)
