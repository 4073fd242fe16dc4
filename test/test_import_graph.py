"""The package's folders import each other one way (issue #20): no circle between subpackages, counting every
relative import, lazy ones inside functions included."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dense_descriptor_ros"


def folder_graph() -> dict[str, set[str]]:
    """Subpackage (or top-level module) -> the others it imports."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("").parts
        pkg = list(rel[:-1])  # the package a relative import is resolved against
        src = rel[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level == 0:
                continue
            base = pkg[: len(pkg) - (node.level - 1)]
            target = base + (node.module.split(".") if node.module else [])
            names = [target] if node.module or target else [[a.name] for a in node.names]
            for t in names:
                if t and t[0] != src:
                    edges[src].add(t[0])
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_no_circle_between_folders():
    """Before issue #20 this found matching -> runtime -> matching (and sim <-> data, ros_core <-> pipeline)."""
    edges = folder_graph()
    assert "pipeline" in edges["node"] and "ros_core" in edges["pipeline"]  # the graph is really read
    assert find_cycle(edges) is None, f"folders import each other in a circle: {' -> '.join(find_cycle(edges))}"


def test_the_check_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
