"""The package's import direction: each stage imports only the layers below it, and no cycle.

Every import counts, also those inside functions and under TYPE_CHECKING: a lower layer
that reaches up, even lazily, would tie the stages together again.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "dbt_kafka_sync"

# Top to bottom. A module may import its own layer's modules (within its own package)
# and any layer below; never one above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__",),
    ("cli",),
    ("runner", "debug"),
    ("report",),
    ("job",),
    ("alerts",),
    ("state",),
    ("kafka",),
    ("messages",),
    ("changes",),
    ("sources",),
    ("dbt",),
    ("config",),
    ("errors", "sql", "session", "faults", "__init__"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 2 else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, known: set[str]) -> set[str]:
    """The package's modules a file imports, wherever the import statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in known}
    return found


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imported(path, known) - {name} for name, path in found.items()}


def test_every_module_has_a_layer() -> None:
    for module in modules():
        layer_of(module)


def upward_imports() -> list[str]:
    problems = []
    for module, targets in graph().items():
        for target in targets:
            if layer_of(target) < layer_of(module):
                problems.append(f"{module} imports {target}, a layer above it")
            same_layer = layer_of(target) == layer_of(module)
            other_package = target.split(".")[1] != module.split(".")[1]
            if same_layer and other_package and target != "dbt_kafka_sync":
                problems.append(f"{module} imports {target}, another package of its layer")
    return sorted(problems)


def test_imports_point_down_only() -> None:
    assert upward_imports() == []


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a path of modules, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles() -> None:
    assert find_cycle(graph()) is None


@pytest.mark.parametrize(
    ("edges", "cyclic"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
        ({"a": {"b"}, "b": {"a"}}, True),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
    ],
    ids=["chain", "pair", "triangle"],
)
def test_the_cycle_finder_finds_cycles(edges: dict[str, set[str]], cyclic: bool) -> None:
    assert (find_cycle(edges) is not None) == cyclic
