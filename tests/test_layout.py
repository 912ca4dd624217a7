"""The package's import graph has no cycle (data flows one way: loop -> report -> store -> policy ->
plan -> loader). Every import of a gekodata module counts, function-level ones included."""
from __future__ import annotations

import ast
from pathlib import Path

import gekodata

ROOT = Path(gekodata.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found.update(c for c in candidates if c.split(".")[0] == "gekodata")
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        # an import of a.b also runs package a's __init__: count it as an edge to a
        deps = set()
        for target in _imports(path, name):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                deps.add(target)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                cycle = visit(dep)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def _is_package_edge(a: str, b: str) -> bool:
    # a package's __init__ re-exporting its own submodules is not a cycle of concepts
    return b.startswith(a + ".") or a.startswith(b + ".")


def test_no_import_cycle():
    graph = {name: {d for d in deps if not _is_package_edge(name, d)} for name, deps in import_graph().items()}
    assert find_cycle(graph) == []


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


# The layers, bottom up (README "Layout"): a module imports only from its own unit or from units of
# a lower layer. Units are gekodata's top-level packages and modules.
LAYERS = {
    "arguments": 0,  # argument checks every layer shares; imports nothing of gekodata
    "store": 1, "signals": 1,
    "policy": 2, "dataset": 2, "gating": 2,
    "planning": 3, "reference": 3,
    "diagnostics": 4,
    "sampler": 5,
    "prompts": 6, "streaming": 6,
    "hf": 7, "lightning": 7,
    # public import paths and the package's own re-exports sit on top
    "tokens": 8, "selective": 8, "datamap": 8, "__main__": 8, "": 8,
}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for name, deps in graph.items():
        own = _unit(name)
        for dep in deps:
            unit = _unit(dep)
            if unit != own and LAYERS[unit] >= LAYERS[own]:
                found.append(f"{name} -> {dep}")
    return sorted(found)


def test_every_unit_has_a_layer():
    assert {_unit(name) for name in import_graph()} <= set(LAYERS)


def test_no_module_imports_from_a_layer_above_it():
    assert upward_imports(import_graph()) == []


def test_layer_check_finds_an_upward_import():
    assert upward_imports({"gekodata.store.x": {"gekodata.sampler.y"}}) == ["gekodata.store.x -> gekodata.sampler.y"]
    assert upward_imports({"gekodata.sampler.y": {"gekodata.store.x"}}) == []
