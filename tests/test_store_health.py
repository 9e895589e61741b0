"""The database's health through the real CLI: corrupt, newer, older, replaced, locked, raced.

Contract (README, "Crashes, disk, lock"): a command that cannot use the database
stops with exit code 1 and one line ``Error: ...`` that says what to do, writes
nothing, and never leaves a crashed run recorded as finished.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.diff import content_hash
from pipeline.errors import StoreError
from pipeline.plan import Update
from pipeline.record import empty_record
from pipeline.store import SCHEMA, SCHEMA_VERSION, Store
from pipeline.store import migrations as schema_module

TRIALWATCH = [sys.executable, "-m", "pipeline"]
HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA locking_mode=EXCLUSIVE")  # readers are shut out too, even in WAL mode
conn.execute("BEGIN EXCLUSIVE")
conn.execute("INSERT INTO meta (key, value) VALUES ('holder', 'uncommitted')")
print("locked", flush=True)
time.sleep(60)
"""


def write_config(folder: Path, *, alerts: str = "") -> Path:
    dead = "http://127.0.0.1:9"  # never reached: every command here stops before the network
    path = folder / "config.toml"
    path.write_text(
        f'[database]\npath = "t.db"\nbusy_timeout = 1\n\n'
        f'[sources.ctgov]\nbase_url = "{dead}/api/v2"\nretries = 0\n\n'
        f'[sources.who]\nbase_url = "{dead}"\nretries = 0\n\n'
        f'[watch]\ntrials = ["NCT00000001", "NCT00000002"]\n{alerts}'
    )
    return path


def trialwatch(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*TRIALWATCH, "--config", str(config), *args], capture_output=True, text=True,
                          timeout=60, cwd=config.parent)


def assert_one_line_error(result: subprocess.CompletedProcess, needle: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0], result.stderr


def _update(trial: str, title: str, *, outcome: str = "new", changes=None) -> Update:
    record = empty_record(trial, "ctgov", "ClinicalTrials.gov")
    record["public_title"] = title
    record["conditions"] = ["Condition " * 20]
    return Update(trial, "ctgov", outcome, record=record, content_hash=content_hash(record),
                  raw=b'{"x":1}', raw_format="json", new_snapshot=True, changes=changes or [])


def _change(old: str, new: str) -> dict:
    return {"field": "public_title", "old": old, "new": new, "added": None, "removed": None,
            "significance": "other", "kind": "field"}


def fill(db: Path, trials: int, *, rounds: int = 1) -> None:
    """``trials`` trials, each changed ``rounds - 1`` times."""
    with Store(db) as store:
        run = store.start_run(["ctgov"], "test")
        for i in range(trials):
            store.save_update(_update(f"NCT{i:08d}", "v0"), run)
        for r in range(1, rounds):
            store.save_updates(
                [_update(f"NCT{i:08d}", f"v{r}", outcome="changed", changes=[_change(f"v{r - 1}", f"v{r}")])
                 for i in range(trials)], run)
        store.finish_run(run, {"fetched": trials})
        store.checkpoint()  # trialwatch's own: the file keeps its "verified" stamp


def files(db: Path) -> dict[str, bytes]:
    """Every byte of the database and its WAL as they stand (not the refresh lock file)."""
    return {p.name: p.read_bytes() for p in (db, Path(str(db) + "-wal")) if p.exists()}


# -- 15: a corrupt database ---------------------------------------------------------------


def scramble_table(db: Path, table: str) -> None:
    conn = sqlite3.connect(db)
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with open(db, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(random.Random(15).randbytes(page_size))


CORRUPT_COMMANDS = [
    ("refresh", "--no-progress"),
    ("status",),
    ("watch", "list"),
    ("export",),
    ("report", "--since", "last"),
    ("show", "NCT00000001"),
]


def test_a_corrupt_database_gives_one_clear_error_and_is_never_written(tmp_path):
    config = write_config(tmp_path)
    db = tmp_path / "t.db"
    fill(db, 300)
    scramble_table(db, "trials")
    before = files(db)
    for command in CORRUPT_COMMANDS:
        result = trialwatch(config, *command)
        assert_one_line_error(result, "is corrupt")
        assert "restore it from a backup" in result.stderr
        assert files(db) == before, command  # nothing written, not even a run row
    daemon = trialwatch(config, "daemon", "--once", "--source", "ctgov")
    assert daemon.returncode == 1 and "Traceback" not in daemon.stderr and "is corrupt" in daemon.stderr
    assert files(db) == before


@pytest.mark.parametrize("table", ["snapshots", "changes", "trials"])
def test_a_corrupt_page_away_from_the_root_is_caught_before_anything_is_written(tmp_path, table):
    """The same promise when the damage is in a leaf page, not a root: a check that only
    reads a row of each table would let the run write first."""
    config = write_config(tmp_path)
    db = tmp_path / "t.db"
    fill(db, 300, rounds=2)
    conn = sqlite3.connect(db)
    leaves = [n for (n,) in conn.execute(
        "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno", (table,))]
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    leaves = [n for n in leaves if n != root]
    assert leaves, f"{table} has no leaf page but its root"
    with open(db, "r+b") as f:
        f.seek((leaves[len(leaves) // 2] - 1) * page_size)
        f.write(random.Random(7).randbytes(page_size))
    before = files(db)
    for command in (("refresh", "--no-progress"), ("report", "--since", "last")):
        assert_one_line_error(trialwatch(config, *command), "is corrupt")
        assert files(db) == before, command


def test_a_file_that_is_not_a_database_gives_the_same_error(tmp_path):
    config = write_config(tmp_path)
    db = tmp_path / "t.db"
    db.write_bytes(random.Random(1).randbytes(8192))
    before = db.read_bytes()
    for command in CORRUPT_COMMANDS[:3]:
        assert_one_line_error(trialwatch(config, *command), "is corrupt")
    assert db.read_bytes() == before


def test_a_run_that_ends_in_an_exception_is_never_recorded_finished(tmp_path, monkeypatch):
    import pipeline.refresh as refresh_module
    from pipeline.config import load_config

    config = load_config(write_config(tmp_path))

    def boom(*args, **kwargs):
        raise RuntimeError("a bug in the middle of the run")

    monkeypatch.setattr(refresh_module, "_refresh_source", boom)
    with Store(config.database_path) as store:
        with pytest.raises(RuntimeError):
            refresh_module.refresh(config, store, sources=["ctgov"])
        (run,) = store.runs()
        assert run["status"] == "failed" and run["finished_at"]


# -- 16: schema versions ------------------------------------------------------------------


def test_a_database_from_a_newer_trialwatch_is_refused_and_left_alone(tmp_path):
    config = write_config(tmp_path)
    db = tmp_path / "t.db"
    fill(db, 3)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    before = files(db)
    for command in (("status",), ("refresh", "--no-progress"), ("report", "--since", "last"), ("watch", "list")):
        assert_one_line_error(trialwatch(config, *command), "written by a newer trialwatch")
    assert files(db) == before
    with pytest.raises(StoreError, match="upgrade trialwatch"):
        Store(db)


#: The schema trialwatch 1 created (a17250e), kept verbatim: every migration starts there.
V1_SCHEMA = (Path(__file__).parent / "v1_schema.sql").read_text()


def make_v1_database(db: Path) -> None:
    """A database as trialwatch 1 left it: the v1 schema, a trial, a change, a cursor."""
    assert "fetch_log_fetched" not in V1_SCHEMA and "vanish_streak" not in V1_SCHEMA and "checked_run" not in V1_SCHEMA
    conn = sqlite3.connect(db)
    conn.executescript(V1_SCHEMA)
    conn.executescript(
        """
        INSERT INTO meta VALUES ('schema_version', '1'), ('report_cursor_change', '1');
        INSERT INTO snapshots (id, trial_id, source, content_hash, record, fetched_at)
            VALUES (1, 'NCT00000001', 'ctgov', 'h', '{"public_title": "Old"}', '2026-01-01T00:00:00Z');
        INSERT INTO trials (trial_id, source, state, snapshot_id, content_hash, title)
            VALUES ('NCT00000001', 'ctgov', 'present', 1, 'h', 'Old');
        INSERT INTO changes (trial_id, source, snapshot_id, field, old, new, significance, detected_at)
            VALUES ('NCT00000001', 'ctgov', 1, 'public_title', '"A"', '"Old"', 'other', '2026-01-01T00:00:00Z');
        """
    )
    conn.commit()
    conn.close()


def test_an_older_database_is_migrated_in_place_step_by_step(tmp_path):
    db = tmp_path / "t.db"
    make_v1_database(db)
    result = trialwatch(write_config(tmp_path), "status")
    assert result.returncode == 0, result.stderr
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    assert conn.execute("SELECT value FROM meta WHERE key = 'database_id'").fetchone()[0]
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'fetch_log_fetched'").fetchone()
    assert conn.execute("SELECT title FROM trials").fetchall() == [("Old",)]
    # step 3: the vanish streak (none yet) and the run that last checked it (none known)
    assert [r[1] for r in conn.execute("PRAGMA table_info(trials)")][-2:] == ["vanish_streak", "checked_run"]
    assert conn.execute("SELECT vanish_streak, checked_run FROM trials").fetchall() == [(0, None)]
    conn.close()
    with Store(db) as store:  # the migrated database is a full current one
        assert store.report_cursor() == (1, 0)
        assert store.search("Old")[0]["trial_id"] == "NCT00000001"
        assert store.load_state("NCT00000001", "ctgov").vanish_streak == 0
        assert store.check_order("ctgov") == {"NCT00000001": (0, "")}
    fresh = tmp_path / "new.db"
    Store(fresh).close()
    new_conn = sqlite3.connect(fresh)
    migrated = sqlite3.connect(db)
    try:  # migrated step by step, it has the columns, keys, indexes, triggers and views of a new one
        for table in ("trials", "snapshots", "changes", "runs", "fetch_log", "meta", "watch_tags"):
            for pragma in ("table_info", "foreign_key_list", "index_list"):
                assert sorted(migrated.execute(f"PRAGMA {pragma}({table})")) == \
                    sorted(new_conn.execute(f"PRAGMA {pragma}({table})")), (table, pragma)
        objects = "SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        assert migrated.execute(objects).fetchall() == new_conn.execute(objects).fetchall()
        assert migrated.execute("PRAGMA foreign_key_check").fetchall() == []
        assert migrated.execute("SELECT trial_id, title, status FROM current_trials").fetchall() == \
            [("NCT00000001", "Old", None)]
        assert migrated.execute("SELECT title, old_value, new_value FROM change_log").fetchall() == \
            [("Old", "A", "Old")]
    finally:
        new_conn.close()
        migrated.close()


def test_step_4_rebuilds_tables_that_already_point_at_each_other(tmp_path):
    """Rebuilding snapshots under trials and changes that reference it (keys declared, rows
    pointing) must not delete through the keys: they are off while steps run, checked after."""
    db = tmp_path / "t.db"
    fill(db, 5, rounds=2)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")  # step 4 runs again
    conn.commit()
    conn.close()
    with Store(db) as store:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert store.conn.execute("PRAGMA foreign_keys").fetchone() == (1,)  # on again after the steps
        assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert store.conn.execute("SELECT count(*) FROM changes WHERE snapshot_id IS NOT NULL").fetchone() == (5,)
        assert len(store.search("v1")) == 5


def test_a_migration_step_that_fails_leaves_the_database_at_its_version(tmp_path, monkeypatch):
    db = tmp_path / "t.db"
    make_v1_database(db)

    def half_done(database):
        database["fetch_log"].create_index(["fetched_at"], index_name="fetch_log_fetched")
        raise RuntimeError("power cut in the middle of a step")

    monkeypatch.setattr(schema_module, "MIGRATIONS", [half_done])
    monkeypatch.setattr("pipeline.store.base.MIGRATIONS", [half_done])
    with pytest.raises(RuntimeError):
        Store(db)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
    assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'fetch_log_fetched'").fetchone()
    conn.close()


def test_a_failed_step_3_keeps_step_2_and_the_next_open_carries_on(tmp_path, monkeypatch):
    db = tmp_path / "t.db"
    make_v1_database(db)
    real = list(schema_module.MIGRATIONS)

    def half_done(database):
        database.execute("ALTER TABLE trials ADD COLUMN vanish_streak INTEGER NOT NULL DEFAULT 0")
        raise RuntimeError("power cut in the middle of step 3")

    monkeypatch.setattr("pipeline.store.base.MIGRATIONS", [real[0], half_done])
    with pytest.raises(RuntimeError):
        Store(db)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'fetch_log_fetched'").fetchone()  # step 2 stays
    assert "vanish_streak" not in [r[1] for r in conn.execute("PRAGMA table_info(trials)")]  # step 3 rolled back
    conn.close()
    monkeypatch.setattr("pipeline.store.base.MIGRATIONS", real)
    with Store(db) as store:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert store.load_state("NCT00000001", "ctgov").vanish_streak == 0
        # step 4: the registry's date of a change (issue 11 item 10); old rows keep none
        assert "registry_date" in store.db["changes"].columns_dict


# -- 17: the file replaced under a running process --------------------------------------


def test_a_database_deleted_under_an_open_store_is_not_written(tmp_path):
    db = tmp_path / "t.db"
    store = Store(db)
    store.save_update(_update("NCT00000001", "v0"), None)
    store.check_identity()
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    with pytest.raises(StoreError, match="deleted or replaced"):
        store.save_update(_update("NCT00000002", "v0"), None)
    with pytest.raises(StoreError, match="deleted or replaced"):
        store.check_identity()
    store.close()
    with Store(db) as fresh:  # the same process opening the path again finds a new database
        with pytest.raises(StoreError, match="deleted or replaced"):
            fresh.check_identity()


def test_the_daemon_stops_when_its_database_is_deleted(tmp_path):
    from test_daemon import query, start_daemon, stop, wait_for
    from test_daemon import write_config as daemon_config
    from pipeline.simulator.corpus import Corpus
    from pipeline.simulator.server import SimulatorServer

    corpus = Corpus(size=3, seed=3)
    with SimulatorServer(corpus) as server:
        config = daemon_config(tmp_path, server, corpus.ids[:3], schedule='ctgov = "*/1 * * * * *"\nwho = "0 0 1 1 *"',
                               who=False)
        db, log = tmp_path / "t.db", tmp_path / "daemon.log"
        proc = start_daemon(config, log)
        try:
            wait_for(lambda: query(db, "SELECT 1 FROM runs WHERE status = 'finished'"), what="a first run")
            for suffix in ("", "-wal", "-shm"):
                Path(str(db) + suffix).unlink(missing_ok=True)
            wait_for(lambda: "deleted or replaced" in log.read_text(), what="the daemon noticing")
            assert proc.wait(15) == 1  # it stops, with an error, instead of retrying at each job
            assert "Error: database" in log.read_text()
            assert not db.exists()  # no new, empty database was created: no new history began
        finally:
            stop(proc)


# -- 19: busy_timeout everywhere -----------------------------------------------------------


def test_every_command_gives_up_on_a_locked_database_after_busy_timeout(tmp_path):
    config = write_config(
        tmp_path, alerts='\n[[alerts]]\nchannel = "folder"\nname = "box"\npath = "outbox"\n'
    )
    db = tmp_path / "t.db"
    fill(db, 3)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for command in (("status",), ("report", "--since", "last"), ("deliver", "--no-wait"), ("watch", "list")):
            started = time.monotonic()
            result = trialwatch(config, *command)
            assert time.monotonic() - started < 8, command  # busy_timeout = 1, not the default 30 s
            assert_one_line_error(result, "is locked by another process")
        started = time.monotonic()
        daemon = trialwatch(config, "daemon", "--once", "--source", "ctgov")
        assert time.monotonic() - started < 8
        assert daemon.returncode == 1 and "is locked by another process" in daemon.stderr
    finally:
        holder.kill()
        holder.wait()


# -- 13: the report cursor only moves forward ----------------------------------------------


def test_two_reports_since_last_at_once_never_move_the_cursor_back(tmp_path):
    """Report A reads, blocks writing its (large) output; changes arrive; B reports them; A ends last."""
    config = write_config(tmp_path)
    db = tmp_path / "t.db"
    fill(db, 400, rounds=3)  # 800 changes: far more than a pipe holds
    slow = subprocess.Popen([*TRIALWATCH, "--config", str(config), "report", "--since", "last"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        first = slow.stdout.read(1000)  # A has read its window and is blocked writing it
        assert b"report" in first
        with Store(db) as store:
            store.save_update(_update("NCT00000000", "later", outcome="changed", changes=[_change("v2", "later")]),
                              None)
            newest = store.max_ids()[0]
        fast = trialwatch(config, "report", "--since", "last")
        assert fast.returncode == 0 and "later" in fast.stdout
        rest = slow.communicate(timeout=60)
        assert slow.returncode == 0, rest[1]
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait()
    with Store(db) as store:
        assert store.report_cursor()[0] == newest
    again = trialwatch(config, "report", "--since", "last")
    assert again.returncode == 0 and "no changes" in again.stdout  # nothing reported twice


def test_channel_and_report_cursors_never_move_back(tmp_path):
    with Store(tmp_path / "t.db") as store:
        store.set_report_cursor(20, 5)
        store.set_report_cursor(10, 2)
        assert store.report_cursor() == (20, 5)
        store.set_report_cursor(30, 4)
        assert store.report_cursor() == (30, 5)
        store.ensure_channel("hook", "webhook")
        store.record_delivery("hook", [], [], 9, 9)
        store.advance_channel("hook", 3, 3)
        store.record_delivery("hook", [], [], 4, 4)
        row = store.channel("hook")
        assert (row["change_cursor"], row["failure_cursor"]) == (9, 9)


# -- issue 8: database.fetch_log_days ------------------------------------------------------


def test_each_run_prunes_the_fetch_log_to_fetch_log_days(tmp_path):
    from pipeline.config import load_config
    from pipeline.refresh import refresh

    config = load_config(write_config(tmp_path))
    with Store(config.database_path) as store:
        old = {"source": "ctgov", "url": "http://x/old", "fetched_at": "2020-01-01T00:00:00Z"}
        recent = {"source": "ctgov", "url": "http://x/recent", "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                          time.gmtime())}
        store.log_fetches([old, recent])
        refresh(config, store, sources=["ctgov"], trial_ids=[])
        urls = [r[0] for r in store.conn.execute("SELECT url FROM fetch_log")]
    assert urls == ["http://x/recent"]
    assert config.fetch_log_days == 90


def test_v7_views_are_re_created_with_open_flags(tmp_path):
    """v7 -> v8: the views are dropped and made again from SCHEMA; ``current_trials`` gains
    ``open_flags`` (the trial's open discrepancies and flags, through ``trial_links``)."""
    db = tmp_path / "t.db"
    with Store(db) as store:
        run = store.start_run(["ctgov"], "test")
        store.conn.execute("INSERT INTO trials (trial_id, source, state, title) VALUES ('NCT00000001', 'ctgov',"
                           " 'pending', 'T')")
        store.save_trial_links({("NCT00000001", "ctgov"): "NCT00000001"})
        store.save_trial_events({("flag", "results_overdue", "ctgov:NCT00000001"): {
            "trial_key": "NCT00000001", "detail": {"summary": "overdue"}}}, {"ctgov:NCT00000001"}, run,
            "2026-11-30T00:00:00Z")
    conn = sqlite3.connect(db)
    conn.execute("DROP VIEW current_trials")
    conn.execute("CREATE VIEW current_trials AS SELECT trial_id, source, title FROM trials")  # as v7 had no flags
    conn.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with Store(db) as store:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)  # v8, and every step after it
        row = store.conn.execute("SELECT title, open_flags FROM current_trials").fetchone()
        assert tuple(row) == ("T", '["results overdue"]')
        views = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
        assert views == {"current_trials", "change_log"}
