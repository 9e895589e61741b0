"""The database schema, in one place (the migrations from older versions: :mod:`pipeline.store.migrations`).

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

import sqlite3

from pipeline.store.views import VIEWS_AND_TAGS

SCHEMA_VERSION = 10

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

TRIAL_TABLES = """
-- v4: one trial across registries (issue 10).  Rebuilt from the stored records at the
-- end of each run, import and backfill (pipeline.trial_events).
CREATE TABLE IF NOT EXISTS trial_links (
    trial_id TEXT NOT NULL,
    source TEXT NOT NULL,
    trial_key TEXT NOT NULL,                      -- the trial: an NCT ID of one of its records, else its smallest ID
    snapshot_id INTEGER,                          -- v9: the record's current snapshot when it was linked
    link_ids TEXT,                                -- v9: the secondary IDs it was linked by (JSON), from that snapshot
    PRIMARY KEY (trial_id, source)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trial_links_key ON trial_links (trial_key);
-- v10: the keys each linked record can be matched by (pipeline.linking.record_keys of its
-- ID and of the link_ids it was linked by), so that records added later find the records
-- they link to by an index lookup instead of every record's IDs being read and parsed.
CREATE TABLE IF NOT EXISTS trial_link_keys (
    key TEXT NOT NULL,
    trial_id TEXT NOT NULL,
    source TEXT NOT NULL,
    secondary INTEGER NOT NULL,                   -- 1: a key of its secondary IDs, 0: of its own ID
    PRIMARY KEY (key, trial_id, source, secondary)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trial_link_keys_member ON trial_link_keys (trial_id, source);

CREATE TABLE IF NOT EXISTS trial_flags (
    id INTEGER PRIMARY KEY,
    trial_key TEXT NOT NULL,
    kind TEXT NOT NULL,                           -- discrepancy | flag
    subject TEXT NOT NULL,                        -- the compared field, or the flag kind
    copies TEXT NOT NULL,                         -- the records involved, "source:trial_id" separated by spaces
    detail TEXT NOT NULL,                         -- JSON: the values, dates and a one-line summary
    raised_at TEXT NOT NULL,
    cleared_at TEXT,                              -- NULL while open
    raised_change INTEGER,                        -- the changes row that announced it
    cleared_change INTEGER                        -- the changes row that announced it resolved
);
CREATE UNIQUE INDEX IF NOT EXISTS trial_flags_open ON trial_flags (kind, subject, copies) WHERE cleared_at IS NULL;
CREATE INDEX IF NOT EXISTS trial_flags_key ON trial_flags (trial_key);

-- v9: a snapshot as the trial pass reads it (pipeline.trial_events), written with the
-- snapshot.  facts: what the trial rules read of its record (pipeline.trial_facts), a
-- tenth of its size.  secondary_ids: what links it to other records.  The snapshot's
-- own columns the pass needs are repeated here (snapshots never change): they come
-- after the record and the raw payload in a snapshots row, and reading them there
-- reads the whole row.  A snapshot written before v9 has no row (the pass reads it).
CREATE TABLE IF NOT EXISTS snapshot_facts (
    snapshot_id INTEGER PRIMARY KEY REFERENCES snapshots (id),
    raw_format TEXT,
    fetched_at TEXT NOT NULL,
    registry_date TEXT,
    backfilled INTEGER NOT NULL DEFAULT 0,
    run_id INTEGER,
    secondary_ids TEXT NOT NULL,                  -- JSON list
    facts TEXT NOT NULL                           -- JSON
);
"""

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
    kind TEXT NOT NULL DEFAULT 'field',           -- field | detail | missing | reappeared | query
    detected_at TEXT NOT NULL,                    -- when trialwatch recorded it (UTC): windows, alerts
    backfilled INTEGER NOT NULL DEFAULT 0,
    registry_date TEXT                            -- v4: the registry's date of the change, when it gives one
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
-- v4: each source's part of a refresh run (a backfill or import run has none), so
-- `status` shows a source's own counts and its last refresh.  Counts are NULL where
-- unknown (a run of several sources recorded before v4).
CREATE TABLE IF NOT EXISTS run_sources (
    run_id INTEGER NOT NULL,
    source TEXT NOT NULL,
    fetched INTEGER,
    new INTEGER,
    unchanged INTEGER,
    changed INTEGER,
    missing INTEGER,
    failed INTEGER,
    requests INTEGER,
    note TEXT,                                    -- e.g. why the source was given up for the run
    PRIMARY KEY (run_id, source)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS run_sources_source ON run_sources (source, run_id);

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
""" + TRIAL_TABLES + VIEWS_AND_TAGS


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
