"""The store package's shape (issue 8): small parts, one trials upsert, the only SQLite user."""

from __future__ import annotations

import ast
from pathlib import Path

import pipeline
from pipeline.store import Store

PIPELINE = Path(pipeline.__file__).parent
STORE = PIPELINE / "store"


def test_no_part_of_the_store_is_longer_than_about_400_lines():
    sizes = {p.name: len(p.read_text().splitlines()) for p in STORE.glob("*.py")}
    assert len(sizes) >= 8 and max(sizes.values()) <= 400, sizes


def test_the_trials_row_is_written_by_one_statement():
    writers = [(p.name, text.count("INTO trials")) for p in STORE.glob("*.py") if (text := p.read_text()).count("INTO trials")]
    assert writers == [("trials.py", 1)]
    assert "UPDATE trials SET state" not in "".join(p.read_text() for p in STORE.glob("*.py"))


def test_only_the_store_imports_sqlite():
    users = []
    for path in PIPELINE.rglob("*.py"):
        if STORE in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] in ("sqlite3", "sqlite_utils") for n in names):
                users.append(str(path.relative_to(PIPELINE)))
    assert users == []


def test_dead_store_methods_are_gone():
    for name in ("ensure_trials", "set_alerted_failure", "iter_current_records", "integrity_check"):
        assert not hasattr(Store, name), name
