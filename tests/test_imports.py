"""The package's import graph has no cycles, lazy (function-level) imports included.

In particular data flows one way: ``jaxcnn.data`` imports its sources (``idx``,
``idx_layout``, ``filetype``, ``tfds_source``), which import only each other,
``jaxcnn.data.common`` and ``jaxcnn.errors``, never ``jaxcnn.data``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "jaxcnn"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the jaxcnn modules it imports anywhere in its source (not the package)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    deps.add(full if full in modules else node.module)
        graph[name] = {d for d in deps if d in modules and d not in (name, "jaxcnn")}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node, path):
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := visit(dep, path + [dep])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_no_import_cycles():
    cycle = _cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_cycle_detection_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_sources_do_not_import_data():
    graph = import_graph()
    sources = ("jaxcnn.data.idx", "jaxcnn.data.idx_layout", "jaxcnn.data.filetype",
               "jaxcnn.data.tfds_source")
    for source in sources:
        assert "jaxcnn.data" not in graph[source], source
        allowed = {"jaxcnn.data.common", "jaxcnn.errors", *sources}  # acyclic: tested above
        assert graph[source] <= allowed, (source, graph[source])
    assert graph["jaxcnn.data.common"] <= {"jaxcnn.errors"}
