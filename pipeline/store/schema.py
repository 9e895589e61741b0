"""The database schema, in one place, and the steps that bring an older database up to it.

A new database is created from :data:`SCHEMA` (every table, index, FTS table and
trigger of the current version) in one transaction.  A database written by an older
trialwatch is brought up to :data:`SCHEMA_VERSION` by the :data:`MIGRATIONS` after its
version, each step in its own transaction (a crash between two steps leaves a database
at a known version, and the next open carries on).  A database from a newer trialwatch
is refused: this one cannot know what the newer columns mean.

The schema is plain SQL, not sqlite-utils' ``create()``: it needs ``WITHOUT ROWID``
tables, a partial unique index, an FTS5 table and triggers, which sqlite-utils does
not express.  Migrations use sqlite-utils where it fits (``create_index``, and
``transform()`` for any future column rename or type change).
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from typing import Callable

import sqlite_utils

from pipeline.store.views import VIEWS_AND_TAGS

SCHEMA_VERSION = 4

#: Indexes one snapshot for ``trialwatch search`` (title, conditions, interventions).
SEARCH_INSERT = """
    INSERT INTO search_fts (rowid, trial_id, source, title, conditions, interventions)
    SELECT s.id, s.trial_id, s.source,
        coalesce(json_extract(s.record, '$.public_title'), '') || char(10)
            || coalesce(json_extract(s.record, '$.scientific_title'), '') || char(10)
            || coalesce(json_extract(s.record, '$.acronym'), ''),
        (SELECT group_concat(value, char(10)) FROM json_each(s.record, '$.conditions')),
        (SELECT group_concat(value, char(10)) FROM json_each(s.record, '$.interventions'))
    FROM snapshots s WHERE s.id = {snapshot}"""
_NOT_INDEXED = " AND NOT EXISTS (SELECT 1 FROM search_fts WHERE rowid = s.id)"

SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    trial_id TEXT NOT NULL,
    source TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',       -- present | missing | pending (never fetched yet)
    snapshot_id INTEGER REFERENCES snapshots (id),  -- current snapshot
    content_hash TEXT,
    title TEXT,
    recruitment_status TEXT,
    last_updated TEXT,                            -- the registry's own last-update date
    first_seen TEXT,
    last_seen TEXT,
    last_checked TEXT,
    last_changed TEXT,
    missing_since TEXT,
    fail_streak INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    alerted_failure INTEGER NOT NULL DEFAULT 0,   -- a failure alert is out for the current streak
    vanish_streak INTEGER NOT NULL DEFAULT 0,     -- v3: answered runs in a row that denied it, deletion withheld
    checked_run INTEGER REFERENCES runs (id),     -- v3: the run that last checked it (the check order)
    PRIMARY KEY (trial_id, source)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY,
    trial_id TEXT NOT NULL,
    source TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    record TEXT NOT NULL,                         -- normalized record, JSON
    raw BLOB,                                     -- zlib-compressed raw payload
    raw_format TEXT,                              -- json | html | xml | csv
    parser_version INTEGER NOT NULL DEFAULT 1,
    fetched_at TEXT NOT NULL,
    registry_date TEXT,                           -- version date given by the registry (backfill)
    registry_version INTEGER,                     -- version number given by the registry (backfill)
    backfilled INTEGER NOT NULL DEFAULT 0,
    run_id INTEGER REFERENCES runs (id)
);
CREATE INDEX IF NOT EXISTS snapshots_trial ON snapshots (trial_id, source, id);

CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY,
    trial_id TEXT NOT NULL,
    source TEXT NOT NULL,
    snapshot_id INTEGER REFERENCES snapshots (id),  -- the snapshot this change led to (NULL for 'missing')
    run_id INTEGER REFERENCES runs (id),
    field TEXT NOT NULL,
    old TEXT,                                     -- JSON
    new TEXT,                                     -- JSON
    added TEXT,                                   -- JSON list, for list fields
    removed TEXT,                                 -- JSON list, for list fields
    significance TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'field',           -- field | detail | missing | reappeared
    detected_at TEXT NOT NULL,
    backfilled INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS changes_detected ON changes (detected_at);
CREATE INDEX IF NOT EXISTS changes_trial ON changes (trial_id, source);
CREATE INDEX IF NOT EXISTS changes_snapshot ON changes (snapshot_id);       -- v4: foreign key
CREATE INDEX IF NOT EXISTS changes_run ON changes (run_id);                 -- v4: foreign key
CREATE INDEX IF NOT EXISTS changes_significance ON changes (significance);  -- v4: facets in `serve`
CREATE INDEX IF NOT EXISTS changes_field ON changes (field);                -- v4: facets in `serve`
CREATE INDEX IF NOT EXISTS changes_source ON changes (source);              -- v4: facets in `serve`
CREATE INDEX IF NOT EXISTS snapshots_run ON snapshots (run_id);             -- v4: foreign key
CREATE INDEX IF NOT EXISTS trials_snapshot ON trials (snapshot_id);         -- v4: foreign key
CREATE INDEX IF NOT EXISTS trials_changed ON trials (last_changed);         -- v4: newest first in `serve`

CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    sources TEXT,
    trigger TEXT,
    status TEXT NOT NULL DEFAULT 'running',       -- running | finished | interrupted | failed
    fetched INTEGER NOT NULL DEFAULT 0,
    new INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    changed INTEGER NOT NULL DEFAULT 0,
    missing INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    note TEXT
);

CREATE TABLE IF NOT EXISTS fetch_log (
    id INTEGER PRIMARY KEY,
    run_id INTEGER REFERENCES runs (id),
    source TEXT NOT NULL,
    trial_id TEXT,
    url TEXT NOT NULL,
    status INTEGER,
    attempts INTEGER NOT NULL DEFAULT 1,
    elapsed_ms INTEGER,
    error TEXT,
    fetched_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fetch_log_run ON fetch_log (run_id);
CREATE INDEX IF NOT EXISTS fetch_log_fetched ON fetch_log (fetched_at);  -- v2: pruning by age

CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT
);

CREATE TABLE IF NOT EXISTS failure_events (
    id INTEGER PRIMARY KEY,
    trial_id TEXT NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,                           -- failing | recovered
    streak INTEGER NOT NULL,                      -- runs in a row that failed (recovered: the alert's streak)
    error TEXT,                                   -- the last error of the streak
    detected_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS channels (
    name TEXT PRIMARY KEY,                        -- the alert rule's name
    channel TEXT NOT NULL,                        -- webhook | email | folder | apprise
    change_cursor INTEGER NOT NULL,               -- every change id <= this was delivered or not wanted
    failure_cursor INTEGER NOT NULL,              -- the same over failure_events
    created_at TEXT NOT NULL,
    last_attempt TEXT,
    last_success TEXT,
    last_error TEXT,                              -- NULL once a delivery succeeds
    failing_since TEXT
);

CREATE TABLE IF NOT EXISTS deliveries (
    channel TEXT NOT NULL,
    item TEXT NOT NULL,                           -- change | failure
    item_id INTEGER NOT NULL,
    delivered_at TEXT NOT NULL,
    PRIMARY KEY (channel, item, item_id)
) WITHOUT ROWID;
""" + """
-- The mirror (query watches), history backfill and full-text search.

CREATE TABLE IF NOT EXISTS query_watches (
    name TEXT PRIMARY KEY,                        -- watch.queries[].name
    params TEXT NOT NULL,                         -- JSON of the /studies parameters it stands for
    loaded_at TEXT,                               -- first complete load (UTC); NULL = load again
    sync_date TEXT,                               -- registry date (YYYY-MM-DD) the last complete sync covered
    data_timestamp TEXT,                          -- /version dataTimestamp seen by the last complete sync
    last_sync TEXT,                               -- UTC time of the last complete sync
    last_full_sweep TEXT,                         -- UTC time of the last complete sweep of IDs
    members INTEGER NOT NULL DEFAULT 0            -- trials matching at the last sync
);

CREATE TABLE IF NOT EXISTS query_members (
    query TEXT NOT NULL,
    trial_id TEXT NOT NULL,                       -- an NCT ID (query watches are ClinicalTrials.gov only)
    state TEXT NOT NULL DEFAULT 'member',         -- member | left (no longer matches) | missing
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (query, trial_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS query_members_trial ON query_members (trial_id);

CREATE TABLE IF NOT EXISTS backfills (
    trial_id TEXT NOT NULL,
    source TEXT NOT NULL,
    versions INTEGER NOT NULL,                    -- registry versions stored
    done_at TEXT NOT NULL,
    PRIMARY KEY (trial_id, source)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS snapshots_registry_version
    ON snapshots (trial_id, source, registry_version) WHERE backfilled = 1;

-- Full-text index of each trial's current snapshot; rowid = snapshot id.  Kept in step
-- with trials.snapshot_id by the triggers below, whoever writes the trials row.
CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(
    trial_id UNINDEXED, source UNINDEXED, title, conditions, interventions,
    tokenize = 'unicode61 remove_diacritics 2'
);
-- (Store._apply_update indexes its snapshots itself, from the record it has in hand,
-- before pointing the trials row at them; the triggers index what any other writer
-- makes current, parsing the stored JSON.)
CREATE TRIGGER IF NOT EXISTS trials_search_insert AFTER INSERT ON trials
WHEN NEW.snapshot_id IS NOT NULL BEGIN
""" + SEARCH_INSERT.format(snapshot="NEW.snapshot_id") + _NOT_INDEXED + """;
END;
CREATE TRIGGER IF NOT EXISTS trials_search_update AFTER UPDATE OF snapshot_id ON trials
WHEN NEW.snapshot_id IS NOT OLD.snapshot_id BEGIN
    DELETE FROM search_fts WHERE rowid = OLD.snapshot_id;
""" + SEARCH_INSERT.format(snapshot="NEW.snapshot_id") + _NOT_INDEXED + """;
END;
CREATE TRIGGER IF NOT EXISTS trials_search_delete AFTER DELETE ON trials BEGIN
    DELETE FROM search_fts WHERE rowid = OLD.snapshot_id;
END;
""" + VIEWS_AND_TAGS



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


#: Each declared foreign key (v4): child table, column, parent table (``id``).
FOREIGN_KEYS: tuple[tuple[str, str, str], ...] = (
    ("snapshots", "run_id", "runs"),
    ("trials", "snapshot_id", "snapshots"),
    ("trials", "checked_run", "runs"),
    ("changes", "snapshot_id", "snapshots"),
    ("changes", "run_id", "runs"),
    ("fetch_log", "run_id", "runs"),
)


def execute_script(conn: sqlite3.Connection, script: str) -> None:
    """Run the statements of ``script`` one by one in the caller's transaction.

    (``executescript`` would COMMIT first, and a step must stay one transaction.)
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""


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
    new = f"_v4_{table}"
    conn.execute(_create_table_sql(table).replace(f"IF NOT EXISTS {table} (", f"{new} (", 1))
    conn.execute(f"INSERT INTO {new} ({columns}) SELECT {columns} FROM {table}")
    conn.execute(f"DROP TABLE {table}")
    conn.execute(f"ALTER TABLE {new} RENAME TO {table}")


def _v4_foreign_keys_and_views(db: sqlite_utils.Database) -> None:
    """v3 -> v4: declare the foreign keys, add ``watch_tags`` and the views (issue 12).

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


#: ``MIGRATIONS[i]`` takes a database from version ``i + 1`` to ``i + 2``.  Append a
#: step for every schema change, and bump :data:`SCHEMA_VERSION` with it.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _v2_fetch_log_by_age,
    _v3_check_columns,
    _v4_foreign_keys_and_views,
]

assert len(MIGRATIONS) == SCHEMA_VERSION - 1, "one migration per schema version after the first"
