"""The steps that bring a database written by an older trialwatch up to :data:`SCHEMA_VERSION`.

``MIGRATIONS[i]`` takes a database from version ``i + 1`` to ``i + 2``; the store runs
each step in its own transaction, with foreign keys off while it runs and checked
before it commits (:mod:`pipeline.store.base`).  A new database is created from
:data:`~pipeline.store.schema.SCHEMA` directly and needs none of them.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from typing import Callable

import sqlite_utils

from pipeline.linking import link_key_rows
from pipeline.store.schema import SCHEMA, SCHEMA_VERSION, TRIAL_TABLES, execute_script


def _v2_fetch_log_by_age(db: sqlite_utils.Database) -> None:
    """v1 -> v2: index the fetch log by time, so pruning it after each run is cheap; name the database.

    ``meta.database_id`` (random, set once) tells a database from a new one made at
    the same path (see ``Store.check_identity``).
    """
    db["fetch_log"].create_index(["fetched_at"], index_name="fetch_log_fetched", if_not_exists=True)
    db["meta"].insert({"key": "database_id", "value": uuid.uuid4().hex}, pk="key", ignore=True)


def _v3_check_columns(db: sqlite_utils.Database) -> None:
    """v2 -> v3: the vanish guard's and the check order's columns on ``trials`` (issue 9).

    ``vanish_streak``: answered runs in a row in which the registry denied a present
    trial while its deletion was withheld (0 for every existing trial: no run has
    withheld one yet).  ``checked_run``: the run that last checked the trial, so the
    check order is by run number and no clock step can reorder it (NULL: checked
    before the column existed, ordered by ``last_checked`` among those).  A column
    already there (a database a pre-release build altered at open) is left as it is.
    """
    columns = db["trials"].columns_dict
    if "vanish_streak" not in columns:
        db.execute("ALTER TABLE trials ADD COLUMN vanish_streak INTEGER NOT NULL DEFAULT 0")
    if "checked_run" not in columns:
        db.execute("ALTER TABLE trials ADD COLUMN checked_run INTEGER")


def _v4_change_registry_date(db: sqlite_utils.Database) -> None:
    """v3 -> v4: ``changes.registry_date``, the registry's own date of a change (issue 11).

    Set for changes between two imported WHO exports (the record's "last refreshed"
    date) and for backfilled versions (the version's date); NULL for a live refresh,
    dated by ``detected_at``.  Existing rows stay NULL: their dates are as they were.
    """
    if "registry_date" not in db["changes"].columns_dict:
        db.execute("ALTER TABLE changes ADD COLUMN registry_date TEXT")


def _v5_run_sources(db: sqlite_utils.Database) -> None:
    """v4 -> v5: the ``run_sources`` table (issue 11: ``status`` counts per source).

    Every earlier refresh run (not a backfill or an import) gets a row per source it
    covered: its counts when it covered one source, NULL counts (unknown split) when
    it covered several.
    """
    db.execute(
        "CREATE TABLE IF NOT EXISTS run_sources (run_id INTEGER NOT NULL, source TEXT NOT NULL,"
        " fetched INTEGER, new INTEGER, unchanged INTEGER, changed INTEGER, missing INTEGER,"
        " failed INTEGER, requests INTEGER, note TEXT, PRIMARY KEY (run_id, source)) WITHOUT ROWID"
    )
    db.execute("CREATE INDEX IF NOT EXISTS run_sources_source ON run_sources (source, run_id)")
    rows = db.execute(
        "SELECT id, sources, fetched, new, unchanged, changed, missing, failed, requests FROM runs"
        " WHERE coalesce(trigger, '') NOT IN ('backfill', 'import') AND coalesce(note, '') != 'backfill'"
    ).fetchall()
    for run_id, sources, *counts in rows:
        names = [n for n in (sources or "").split(",") if n]
        for name in names:
            values = counts if len(names) == 1 else [None] * len(counts)
            db.execute(
                "INSERT OR IGNORE INTO run_sources (run_id, source, fetched, new, unchanged, changed, missing,"
                " failed, requests) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, name, *values],
            )


def _v6_trial_tables(db: sqlite_utils.Database) -> None:
    """v5 -> v6: ``trial_links`` and ``trial_flags`` (issue 10), empty: the next run, import or
    backfill derives them from the stored records (and raises the open discrepancies and flags once)."""
    execute_script(db.conn, TRIAL_TABLES)
#: Each declared foreign key (v7): child table, column, parent table (``id``).
FOREIGN_KEYS: tuple[tuple[str, str, str], ...] = (
    ("snapshots", "run_id", "runs"),
    ("trials", "snapshot_id", "snapshots"),
    ("trials", "checked_run", "runs"),
    ("changes", "snapshot_id", "snapshots"),
    ("changes", "run_id", "runs"),
    ("fetch_log", "run_id", "runs"),
)


def _create_table_sql(table: str) -> str:
    """The ``CREATE TABLE`` statement of ``table`` in :data:`SCHEMA`."""
    match = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \(.*?\n\)( WITHOUT ROWID)?;", SCHEMA, re.DOTALL)
    assert match is not None, table
    return match.group(0)


def _rebuild(conn: sqlite3.Connection, table: str) -> None:
    """Re-create ``table`` as :data:`SCHEMA` declares it, rows kept (SQLite's 12-step ALTER TABLE).

    Not sqlite-utils' ``transform()``: it would drop ``WITHOUT ROWID`` from ``trials``.
    The table's indexes and triggers go with the old table; the caller re-creates them.
    """
    columns = ", ".join(f'"{r[1]}"' for r in conn.execute(f"PRAGMA table_info({table})"))
    new = f"_v7_{table}"
    conn.execute(_create_table_sql(table).replace(f"IF NOT EXISTS {table} (", f"{new} (", 1))
    conn.execute(f"INSERT INTO {new} ({columns}) SELECT {columns} FROM {table}")
    conn.execute(f"DROP TABLE {table}")
    conn.execute(f"ALTER TABLE {new} RENAME TO {table}")


def _v7_foreign_keys_and_views(db: sqlite_utils.Database) -> None:
    """v6 -> v7: declare the foreign keys, add ``watch_tags`` and the views (issue 12).

    SQLite cannot add a foreign key to a table, so the four tables that hold one are
    re-created with their rows, with the keys switched off meanwhile (the caller does:
    dropping a table others point at would otherwise delete through the keys).  A reference to a row that does not exist (none is ever written;
    a hand-edited database might hold one) points at nothing and becomes NULL, so
    every key holds.  Then the indexes and triggers of the re-created tables, the
    tags table and the views are created from :data:`SCHEMA` (all ``IF NOT EXISTS``).
    Its time grows with the database: ``snapshots`` (the raw payloads) is copied once.
    """
    conn = db.conn
    for child, column, parent in FOREIGN_KEYS:
        conn.execute(
            f"UPDATE {child} SET {column} = NULL WHERE {column} IS NOT NULL"
            f" AND {column} NOT IN (SELECT id FROM {parent})"
        )
    # The search triggers (and any view) name the tables: dropped first, so that no
    # rename trips over them, and made again from SCHEMA below.
    for kind, name in conn.execute("SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'view')").fetchall():
        conn.execute(f'DROP {kind.upper()} "{name}"')
    for table in ("snapshots", "trials", "changes", "fetch_log"):
        _rebuild(conn, table)
    execute_script(conn, SCHEMA)
    problem = conn.execute("PRAGMA foreign_key_check").fetchone()
    if problem is not None:  # cannot happen after the NULLing above; never commit a broken key
        raise sqlite3.IntegrityError(f"foreign key check failed after migration: {tuple(problem)}")


def _v8_views_with_flags(db: sqlite_utils.Database) -> None:
    """v7 -> v8: ``current_trials`` gains ``open_flags`` (issue 12 on issue 10's trial model).

    A view cannot be altered: every view is dropped and made again from :data:`SCHEMA`
    (its other statements are all ``IF NOT EXISTS`` and change nothing).  No row moves.
    """
    conn = db.conn
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'").fetchall():
        conn.execute(f'DROP VIEW "{name}"')
    execute_script(conn, SCHEMA)


def _v9_trial_facts(db: sqlite_utils.Database) -> None:
    """v8 -> v9: what makes the trial pass incremental (issue 8's speed targets).

    ``snapshot_facts``: the part of each record the trial rules read
    (:mod:`pipeline.trial_facts`), written with each new snapshot; empty here (the
    existing snapshots' records are read instead).  ``trial_links.snapshot_id`` and
    ``link_ids``: the snapshot and the secondary IDs each record was linked by, so a
    pass relinks only when a record came, went or changed its IDs; NULL here, so the
    first pass after the migration links everything once.  Columns already there (a
    table made by an earlier step from the current schema) are left as they are.
    """
    execute_script(db.conn, TRIAL_TABLES)  # snapshot_facts (IF NOT EXISTS, like the rest)
    links = db["trial_links"].columns_dict
    if "snapshot_id" not in links:
        db.execute("ALTER TABLE trial_links ADD COLUMN snapshot_id INTEGER")
    if "link_ids" not in links:
        db.execute("ALTER TABLE trial_links ADD COLUMN link_ids TEXT")


def _v10_link_keys(db: sqlite_utils.Database) -> None:
    """v9 -> v10: ``trial_link_keys``, the keys of every linked record, filled from the
    IDs each was linked by (a row not linked yet gets its own keys; the next pass links it)."""
    execute_script(db.conn, TRIAL_TABLES)
    rows = db.execute("SELECT trial_id, source, link_ids FROM trial_links").fetchall()
    db.conn.executemany("INSERT OR IGNORE INTO trial_link_keys (key, trial_id, source, secondary) VALUES (?, ?, ?, ?)",
                        [row for t, s, ids in rows for row in link_key_rows(t, s, ids)])


#: ``MIGRATIONS[i]`` takes a database from version ``i + 1`` to ``i + 2``.  Append a
#: step for every schema change, and bump :data:`SCHEMA_VERSION` with it.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _v2_fetch_log_by_age,
    _v3_check_columns,
    _v4_change_registry_date,
    _v5_run_sources,
    _v6_trial_tables,
    _v7_foreign_keys_and_views,
    _v8_views_with_flags,
    _v9_trial_facts,
    _v10_link_keys,
]

assert len(MIGRATIONS) == SCHEMA_VERSION - 1, "one migration per schema version after the first"
