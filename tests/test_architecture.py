"""The library's import graph flows one way: no module imports one that imports it back."""

from __future__ import annotations

import ast

from tests.helpers import REPO


def imports_of(path) -> set[str]:
    """Modules of the batch package that `path` imports (at any depth of the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("batch"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("batch"))
    return found


def graph() -> dict[str, set[str]]:
    modules = {}
    for path in (REPO / "batch").rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    return {
        name: {m for m in imports_of(path) if m in modules and m != name}
        for name, path in modules.items()
    }


def test_no_import_cycles():
    g = graph()
    seen, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node) :] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in sorted(g[node]):
            visit(nxt)
        stack.pop()

    for node in sorted(g):
        visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_engines_share_the_per_part_task_and_only_io_modules_write_files():
    g = graph()
    assert "batch.engines.base" in g["batch.engines.local"]
    assert "batch.engines.base" in g["batch.engines.dask"]
    assert "batch.engines.local" not in g["batch.engines.dask"]
    for pure in ("batch.core.rules", "batch.core.stats", "batch.core.features", "batch.io.plan"):
        source = (REPO / (pure.replace(".", "/") + ".py")).read_text()
        for writer in ("open(", "write_bytes", "write_text", "ParquetWriter", "CSVWriter"):
            assert writer not in source, f"{pure} writes files ({writer})"
