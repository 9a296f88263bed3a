"""The layout rule of CONTRIBUTING.md, checked on the source: who imports whom, no circles, small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

BASE = {"__init__", "errors", "console"}
# Each part of mlship (a package, or a module directly in src/mlship) and the parts it may import, besides
# itself and BASE. Lower layers never import higher ones; serving/ (the runtime copied into images)
# imports nothing else of mlship at all.
MAY_IMPORT: dict[str, set[str]] = {
    "__init__": set(),
    "errors": set(),
    "console": set(),
    "serving": set(),
    "project": set(),
    "adapters": set(),
    "gate": {"project", "adapters"},
    "convert": {"project", "gate", "adapters"},
    "build": {"project", "gate", "adapters", "serving"},
    "release": {"project", "gate", "adapters", "build", "serving"},
    "ops": {"project", "gate", "adapters", "build", "release", "serving"},
    "doctor": {"project", "adapters"},
    "cli": {"project", "gate", "adapters", "build", "release", "ops", "convert", "serving", "doctor"},
    "__main__": {"cli"},
}
MAX_LINES = 500
MAX_TOP_LEVEL_MODULES = 10


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, name: str) -> set[str]:
    """Every mlship module `path` imports, at module level or inside functions."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {module for module in found if module == "mlship" or module.startswith("mlship.")}


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module → the mlship modules it imports (names that are not modules, e.g. functions, dropped)."""
    paths = {module_name(path, root): path for path in (root / "mlship").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        graph[name] = {module for module in imports_of(path, name) if module in paths and module != name}
    return graph


def part(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Each import that breaks MAY_IMPORT, as 'importer -> imported'."""
    found = []
    for importer, imported in sorted(graph.items()):
        mine = part(importer)
        allowed = MAY_IMPORT.get(mine)
        for target in sorted(imported):
            theirs = part(target)
            if theirs == mine:
                continue
            if allowed is None:
                found.append(f"{importer} -> {target} ({mine} is not in the layout rule)")
            elif theirs not in allowed and not (theirs in BASE and mine != "serving"):
                found.append(f"{importer} -> {target}")
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def circles_without_packages(graph: dict[str, set[str]]) -> list[list[str]]:
    # A package's __init__ re-exporting its own modules is not a circle between jobs: leave those edges out.
    trimmed = {
        name: {target for target in targets if not target.startswith(name + ".")}
        for name, targets in graph.items()
    }
    return circles(trimmed)


def test_every_import_follows_the_layout_rule() -> None:
    assert violations(import_graph(SRC)) == []


def test_there_is_no_import_circle() -> None:
    assert circles_without_packages(import_graph(SRC)) == []


def test_no_module_is_over_500_lines_and_few_live_at_the_top() -> None:
    too_long = {
        str(path.relative_to(SRC)): lines
        for path in (SRC / "mlship").rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert too_long == {}
    top_level = sorted(path.name for path in (SRC / "mlship").glob("*.py"))
    assert len(top_level) <= MAX_TOP_LEVEL_MODULES, top_level


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for relative, text in {
        "mlship/__init__.py": "",
        "mlship/errors.py": "",
        "mlship/serving/__init__.py": "",
        "mlship/serving/app.py": "from mlship.errors import X\n",
        "mlship/project/__init__.py": "",
        "mlship/project/config.py": "def f():\n    from mlship.release import versions\n",
        "mlship/release/__init__.py": "",
        "mlship/release/versions.py": "from mlship.project import config\nfrom . import deploy\n",
        "mlship/release/deploy.py": "from .versions import x\n",
    }.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_the_rule_catches_a_lower_layer_importing_a_higher_one(tree: Path) -> None:
    assert violations(import_graph(tree)) == [
        "mlship.project.config -> mlship.release",
        "mlship.project.config -> mlship.release.versions",
        "mlship.serving.app -> mlship.errors",
    ]


def test_circles_are_found_even_through_imports_inside_functions(tree: Path) -> None:
    assert circles_without_packages(import_graph(tree)) == [
        ["mlship.project.config", "mlship.release.deploy", "mlship.release.versions"]
    ]
