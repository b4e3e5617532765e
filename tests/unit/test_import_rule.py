"""The import rule of the README, checked on the source: packages import only downwards, and no module imports
itself back through others (a circle), lazy imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# README "What is where": core <- ingest, detectors, event_bus, storage <- plate_reader <- worker, services,
# dispatch <- kuzet. A package may import its own modules and any package of a lower tier.
TIER = {
    "core": 0,
    "ingest": 1,
    "detectors": 1,
    "event_bus": 1,
    "storage": 1,
    "plate_reader": 2,
    "worker": 3,
    "services": 3,
    "dispatch": 3,
    "kuzet": 4,
}
# Tooling outside the flow: the service launchers apply the bus's ACL recipe.
EXTRA_ALLOWED = {"deploy": {"event_bus"}}


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package in [*TIER, *EXTRA_ALLOWED]:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (annotations only: nothing is imported at run time)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                todo.extend(child.orelse)
                continue
            todo.append(child)
    return out


def _imports(path: Path, known: set[str]) -> set[str]:
    """Project modules ``path`` imports anywhere in it (``from a.b import c`` counts as a.b.c when that is a module)."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def test_packages_import_only_downwards() -> None:
    modules = _modules()
    known = set(modules)
    wrong = []
    for name, path in modules.items():
        package = name.split(".")[0]
        for target in _imports(path, known):
            other = target.split(".")[0]
            if other == package:
                continue
            allowed = other in EXTRA_ALLOWED.get(package, set()) or (
                package in TIER and other in TIER and TIER[other] < TIER[package]
            )
            if not allowed:
                wrong.append(f"{name} -> {target}")
    assert wrong == [], "imports against the README's rule:\n" + "\n".join(sorted(wrong))


def test_no_import_circles() -> None:
    modules = _modules()
    known = set(modules)
    # A module importing its own package, or a package's __init__ importing its submodules, is how packages
    # work, not a circle.
    graph = {
        name: {
            t
            for t in _imports(path, known)
            if t != name and not name.startswith(t + ".") and not t.startswith(name + ".")
        }
        for name, path in modules.items()
    }
    circles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert circles == [], "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)
