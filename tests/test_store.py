"""The store on a real SQLite file: schema, one transaction per trial, rollback."""

from __future__ import annotations

import sqlite3

import pytest

from pipeline.diff import content_hash
from pipeline.record import empty_record
from pipeline.plan import Update
from pipeline.store import Store

EXPECTED_COLUMNS = {
    "trials": ["trial_id", "source", "state", "snapshot_id", "content_hash", "title", "recruitment_status",
               "last_updated", "first_seen", "last_seen", "last_checked", "last_changed", "missing_since",
               "fail_streak", "last_error", "alerted_failure", "vanish_streak", "checked_run"],
    "snapshots": ["id", "trial_id", "source", "content_hash", "record", "raw", "raw_format", "parser_version",
                  "fetched_at", "registry_date", "registry_version", "backfilled", "run_id"],
    "changes": ["id", "trial_id", "source", "snapshot_id", "run_id", "field", "old", "new", "added", "removed",
                "significance", "kind", "detected_at", "backfilled", "registry_date"],
    "runs": ["id", "started_at", "finished_at", "sources", "trigger", "status", "fetched", "new", "unchanged",
             "changed", "missing", "failed", "requests", "pid", "note"],
    "fetch_log": ["id", "run_id", "source", "trial_id", "url", "status", "attempts", "elapsed_ms", "error",
                  "fetched_at"],
    "meta": ["key", "value"],
}
#: (child table, column, parent table, parent column)
EXPECTED_FOREIGN_KEYS = {
    ("trials", "snapshot_id", "snapshots", "id"), ("trials", "checked_run", "runs", "id"),
    ("snapshots", "run_id", "runs", "id"), ("changes", "snapshot_id", "snapshots", "id"),
    ("changes", "run_id", "runs", "id"), ("fetch_log", "run_id", "runs", "id"),
}


def test_schema(tmp_path):
    path = tmp_path / "t.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert set(EXPECTED_COLUMNS) <= tables
    for table, columns in EXPECTED_COLUMNS.items():
        assert [r[1] for r in conn.execute(f"PRAGMA table_info({table})")] == columns
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    keys = {(table, r[3], r[2], r[4]) for table in EXPECTED_COLUMNS
            for r in conn.execute(f"PRAGMA foreign_key_list({table})")}
    assert keys == EXPECTED_FOREIGN_KEYS
    views = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
    assert views == {"current_trials", "change_log"}
    assert [r[1] for r in conn.execute("PRAGMA table_info(watch_tags)")] == ["tag", "trial_id"]


def test_views_read_readable_values(tmp_path):
    store = Store(tmp_path / "t.db")
    run = store.start_run(["ctgov"], "test")
    store.save_update(_update(fields={"public_title": "T", "recruitment_status": "recruiting"}), run)
    changes = [{"field": "recruitment_status", "old": "recruiting", "new": "active_not_recruiting",
                "added": None, "removed": None, "significance": "status", "kind": "field"},
               {"field": "conditions", "old": ["A"], "new": ["A", "B"], "added": ["B"], "removed": [],
                "significance": "other", "kind": "field"}]
    store.save_update(_update(fields={"public_title": "T", "recruitment_status": "active_not_recruiting",
                                      "conditions": ["A", "B"]}, outcome="changed", changes=changes), run)
    store.save_watch_tags({"covid": ("NCT01234567",)})
    trial = store.conn.execute("SELECT title, status, copies, tags, conditions FROM current_trials").fetchone()
    assert tuple(trial) == ("T", "Active, not recruiting", "ctgov", '["covid"]', "A; B")
    log = store.conn.execute("SELECT title, field, old_value, new_value FROM change_log ORDER BY id").fetchall()
    assert [tuple(r) for r in log] == [("T", "recruitment_status", "Recruiting", "Active, not recruiting"),
                                       ("T", "conditions", "A", "A; B")]


def test_foreign_keys_hold(tmp_path):
    store = Store(tmp_path / "t.db")
    with pytest.raises(Exception, match="FOREIGN KEY"):
        store.save_update(_update(), 999)  # no run 999
    assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []


def _update(trial="NCT01234567", **kw):
    record = empty_record(trial, "ctgov", "ClinicalTrials.gov")
    record.update(kw.pop("fields", {"public_title": "T"}))
    return Update(trial, "ctgov", kw.pop("outcome", "new"), record=record, content_hash=content_hash(record),
                  raw=b'{"x":1}', raw_format="json", new_snapshot=True, **kw)


def test_snapshot_and_changes_written_together(tmp_path):
    store = Store(tmp_path / "t.db")
    run = store.start_run(["ctgov"], "test")
    store.save_update(_update(), run)
    change = {"field": "public_title", "old": "T", "new": "U", "added": None, "removed": None,
              "significance": "other", "kind": "field"}
    store.save_update(_update(fields={"public_title": "U"}, outcome="changed", changes=[change]), run)
    snaps = store.snapshots_of("NCT01234567")
    assert len(snaps) == 2
    (row,) = store.changes()
    assert row["snapshot_id"] == snaps[1]["id"] and row["old"] == "T" and row["new"] == "U"
    state = store.load_state("NCT01234567", "ctgov")
    assert state.snapshot_id == snaps[1]["id"] and state.record["public_title"] == "U"
    assert store.load_snapshot(snaps[0]["id"])["raw"] == b'{"x":1}'


def test_failed_write_leaves_nothing_half_written(tmp_path):
    store = Store(tmp_path / "t.db")
    bad_change = {"field": "x", "old": object(), "new": 1, "significance": "other"}  # not JSON-able
    with pytest.raises(TypeError):
        store.save_update(_update(outcome="changed", changes=[bad_change]), None)
    assert store.snapshots_of("NCT01234567") == []
    assert store.trials() == []


def test_failures_count_a_streak_and_keep_the_record(tmp_path):
    store = Store(tmp_path / "t.db")
    store.save_update(_update(), None)
    for _ in range(3):
        store.save_update(Update("NCT01234567", "ctgov", "failed", error="HTTP 503"), None)
    (row,) = store.trials()
    assert row["fail_streak"] == 3 and row["state"] == "present" and row["last_error"] == "HTTP 503"
