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


# -- small parts and one storage layer ------------------------------------------------------------

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


# Packages not yet split into small parts (issue 19's remaining work); every other one is held to
# the bounds. Remove a package from here in the change that splits it.
def _library_files() -> list:
    return sorted((REPO / "batch").rglob("*.py")) + sorted((REPO / "jobs").rglob("*.py"))


def test_no_module_over_400_lines_and_no_function_over_60():
    big_modules, long_functions = [], []
    for path in _library_files():
        source = path.read_text()
        where = path.relative_to(REPO)
        if source.count("\n") > MAX_MODULE_LINES:
            big_modules.append(f"{where} ({source.count(chr(10))} lines)")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{where}:{node.lineno} {node.name} ({length} lines)")
    assert not big_modules, f"modules over {MAX_MODULE_LINES} lines: {big_modules}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


# What asking "is this location in object storage?" looks like; only batch/storage may ask.
KIND_QUESTIONS = ("ObjectPath", "is_url(", "is_object(", "store_for(", '"s3://', "'s3://")


def test_only_the_storage_package_asks_which_kind_a_location_is():
    found = []
    for path in _library_files():
        if path.is_relative_to(REPO / "batch" / "storage"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if any(q in code for q in KIND_QUESTIONS):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not found, "location kind asked outside batch/storage:\n" + "\n".join(found)


# A location is parsed once, at the edge where a user's text comes in; everything past the edge
# passes the typed location on. `fs.path(x)` on a location is a no-op that hides where it came from.
PARSES_LOCATIONS = ("fs.path(", "fs.parse(")
EDGE_MODULES = (
    "batch/settings/model.py",  # every location setting (flag, BATCH_* environment, .env)
    "batch/io/discovery.py",  # --input entries: folders, files, globs
    "batch/model/datasets.py",  # --data, a user's string naming the training data
    "batch/ops/labels/sources.py",  # jobs.labels's label files, named on its command line
)


def test_locations_are_parsed_only_at_the_edges():
    found = []
    for path in _library_files():
        where = str(path.relative_to(REPO))
        if path.is_relative_to(REPO / "batch" / "storage") or where in EDGE_MODULES:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if any(call in line.split("#", 1)[0] for call in PARSES_LOCATIONS):
                found.append(f"{where}:{number}: {line.strip()}")
    listing = "\n".join(found)
    assert not found, f"a location parsed again past the edge (pass it through):\n{listing}"


def test_the_lists_of_location_edges_name_real_callers():
    """An allow-list entry that no longer parses a location is stale: remove it."""
    for where in EDGE_MODULES:
        source = (REPO / where).read_text()
        assert any(call in source for call in PARSES_LOCATIONS), f"{where} parses no location"
