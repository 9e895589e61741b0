"""The store under a full disk, a locked database, and a record it cannot serialize.

Store level (fast, no network).  The same faults through the real ``trialwatch refresh``
against the simulator are in ``tests/test_faults_cli.py``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from pipeline.diff import content_hash
from pipeline.errors import StoreError
from pipeline.record import empty_record
from pipeline.plan import plan_fetched
from pipeline.sources import Fetched
from pipeline.plan import Update
from pipeline.store import Store

from dbcheck import check_invariants, table_rows

CHANGE = {"field": "public_title", "old": "T", "new": "U", "added": None, "removed": None,
          "significance": "other", "kind": "field"}


def _update(trial="NCT01234567", title="T", outcome="new", changes=(), filler=0):
    record = empty_record(trial, "ctgov", "ClinicalTrials.gov")
    record["public_title"] = title
    record["brief_summary"] = "x" * filler or None
    return Update(trial, "ctgov", outcome, record=record, content_hash=content_hash(record),
                  raw=bytes(range(256)) * (filler // 256 + 1), raw_format="json", new_snapshot=True,
                  changes=list(changes))


def _all_rows(path):
    return {t: table_rows(path, t) for t in ("trials", "snapshots", "changes")}


def test_disk_full_rolls_back_the_trial_and_says_so(tmp_path):
    path = tmp_path / "t.db"
    store = Store(path)
    for i in range(3):
        store.save_update(_update(f"NCT0000000{i}"), None)
    before = _all_rows(path)
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is now full
    with pytest.raises(StoreError) as info:
        store.save_update(_update("NCT00000000", title="U", outcome="changed", changes=[CHANGE], filler=200_000), None)
    assert "disk full" in str(info.value) and "nothing was half-written" in str(info.value)
    with pytest.raises(StoreError):
        store.save_updates([_update(f"NCT1000000{i}", filler=50_000) for i in range(5)], None)
    assert _all_rows(path) == before
    check_invariants(path)
    # space freed: the same write goes through whole
    store.conn.execute("PRAGMA max_page_count = 1073741823")
    store.save_update(_update("NCT00000000", title="U", outcome="changed", changes=[CHANGE], filler=200_000), None)
    counts = check_invariants(path)
    assert counts["snapshots"] == 4 and counts["changes"] == 1
    store.close()


HOLDER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("INSERT INTO meta (key, value) VALUES ('holder', 'uncommitted')")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


def hold_lock(path, seconds=60.0):
    """Another process holding an EXCLUSIVE transaction on ``path`` (until killed)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_locked_database_gives_a_clear_error_and_writes_nothing(tmp_path):
    path = tmp_path / "t.db"
    store = Store(path, timeout=0.3)
    store.save_update(_update("NCT00000001"), None)
    before = _all_rows(path)
    holder = hold_lock(path)
    try:
        started = time.monotonic()
        with pytest.raises(StoreError) as info:
            store.save_update(_update("NCT00000001", title="U", outcome="changed", changes=[CHANGE]), None)
        assert time.monotonic() - started < 5
        assert "locked by another process" in str(info.value)
        with pytest.raises(StoreError):
            store.start_run(["ctgov"], "test")
    finally:
        holder.kill()
        holder.wait()
    assert _all_rows(path) == before
    check_invariants(path)
    assert store.get_meta("holder") is None  # the holder's uncommitted row died with it
    store.save_update(_update("NCT00000001", title="U", outcome="changed", changes=[CHANGE]), None)
    assert check_invariants(path)["changes"] == 1
    store.close()


def test_a_lock_released_in_time_is_waited_for(tmp_path):
    path = tmp_path / "t.db"
    store = Store(path, timeout=10)
    store.save_update(_update("NCT00000001"), None)
    holder = hold_lock(path, seconds=0.5)
    try:
        store.save_update(_update("NCT00000001", title="U", outcome="changed", changes=[CHANGE]), None)
    finally:
        holder.wait()
    assert check_invariants(path)["changes"] == 1


def test_a_record_the_store_cannot_serialize_costs_one_trial(tmp_path, monkeypatch):
    """A parser bug yielding an unstorable value (an int past 64 bits) fails that trial only."""
    from pipeline.sources import SOURCES

    ctgov = SOURCES["ctgov"]

    def bad_normalize(trial_id, payload):
        record = empty_record(trial_id, "ctgov", "ClinicalTrials.gov")
        record["target_size"] = 10**30
        return record

    monkeypatch.setattr(ctgov, "normalize", bad_normalize)
    store = Store(tmp_path / "t.db")
    fetched = Fetched("NCT01234567", "ctgov", "found", payload={}, raw_format="json")
    update = plan_fetched(store.load_snapshot, None, fetched, ctgov)
    assert update.outcome == "failed" and "internal parser error" in update.error
    store.save_update(update, None)
    (row,) = store.trials()
    assert row["state"] == "pending" and row["fail_streak"] == 1
