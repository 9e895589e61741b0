"""The import structure of ``pipeline/``: no cycles, and pure modules that do no I/O.

Read with ``ast`` (nothing is imported): every ``import`` counts, at module level or
inside a function, except those under ``if TYPE_CHECKING:`` (never executed).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pipeline"

#: Modules that must stay pure: parsing, planning, diffing, records, report rendering.
PURE = (
    "pipeline.sources.ctgov.parse",
    "pipeline.sources.who.page",
    "pipeline.sources.who.export",
    "pipeline.sources.who.values",
    "pipeline.plan",
    "pipeline.diff",
    "pipeline.record",
    "pipeline.codec",
    "pipeline.report.model",
    "pipeline.report.text",
    "pipeline.report.markdown",
    "pipeline.report.html",
    "pipeline.report.atom",
    "pipeline.report.data",
    "pipeline.linking",
    "pipeline.crosscheck",
    "pipeline.integrity",
)

#: What does I/O: a pure module must not reach any of these, directly or through others.
IO_MODULES = (
    "httpx",
    "sqlite3",
    "sqlite_utils",
    "subprocess",
    "socket",
    "smtplib",
    "urllib.request",
    "http.client",
    "pipeline.store",
    "pipeline.http_client",
    "pipeline.lock",
    "pipeline.deliver",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(name: str, package: str, level: int) -> str:
    if level:
        base = package.split(".")
        base = base[: len(base) - level + 1]
        return ".".join([*base, name] if name else base)
    return name


def imports_of(module: str) -> set[str]:
    """Every module ``module`` imports at run time (inside pipeline: the most specific one)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module or "", package, node.level)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


GRAPH = {m: {i for i in imports_of(m) if i in MODULES and i != m} for m in MODULES}


def find_cycle() -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(GRAPH):
        if start not in state:
            found = dfs(start)
            if found:
                return found
    return None


def test_the_graph_sees_the_imports():
    assert "pipeline.plan" in GRAPH["pipeline.refresh"]
    assert "pipeline.sources.ctgov.parse" in GRAPH["pipeline.sources.ctgov"]
    assert "pipeline.backfill" in GRAPH["pipeline.cli.bulk"]  # an import inside a function counts


def test_no_import_cycles_inside_pipeline():
    cycle = find_cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_refresh_and_mirror_do_not_import_each_other():
    assert "pipeline.refresh" not in GRAPH["pipeline.mirror"]


def reach(module: str) -> set[str]:
    """Everything ``module`` imports, directly or through other pipeline modules."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        for name in imports_of(current):
            if name in seen:
                continue
            seen.add(name)
            if name in MODULES:
                todo.append(name)
    return seen


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_do_no_io(module):
    reached = reach(module)
    bad = sorted(n for n in reached if any(n == io or n.startswith(io + ".") for io in IO_MODULES))
    assert not bad, f"{module} reaches I/O modules: {bad}"


def test_no_module_outside_a_source_folder_compares_a_source_name_with_a_literal():
    """``source == "ctgov"`` and the like are decisions only a source's own folder makes."""
    names = {"ctgov", "who"}
    offenders = []
    for module, path in MODULES.items():
        if module.startswith(("pipeline.sources.", "pipeline.simulator")):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                literals = set()
                for op in operands:
                    if isinstance(op, ast.Constant) and op.value in names:
                        literals.add(op.value)
                    if isinstance(op, (ast.Tuple, ast.List, ast.Set)):
                        literals |= {e.value for e in op.elts if isinstance(e, ast.Constant) and e.value in names}
                if literals:
                    offenders.append(f"{module}:{node.lineno}")
            elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value in names:
                offenders.append(f"{module}:{node.lineno}")
    assert not offenders, offenders
