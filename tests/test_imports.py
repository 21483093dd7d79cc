"""The project's import graph, imports inside functions included, has no cycle; layers import only downward."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("spliter", "metrics", "ablations", "reports")


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports anywhere in its body (TYPE_CHECKING blocks excluded)."""
    modules = project_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        skip = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If) and _type_checking(block.test)
                for node in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            graph[name] |= {target for target in targets if target in modules and target != name}
    return graph


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_the_project_modules() -> None:
    graph = import_graph()
    assert "ablations.stages.runner" in graph and "ablations.stages.encode" in graph["ablations.stages.runner"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_layers_import_only_downward() -> None:
    allowed = {"spliter": {"spliter"}, "metrics": {"metrics", "spliter"}, "reports": {"reports"},
               "ablations": set(PACKAGES)}
    shared = {"metrics.schema", "metrics.stats", "spliter.atomic"}  # dependency-free (stdlib/numpy) modules every layer may use
    for module, targets in import_graph().items():
        layer = module.split(".")[0]
        wrong = sorted(t for t in targets if t.split(".")[0] not in allowed[layer] and t not in shared)
        assert not wrong, f"{module} imports {wrong}"
