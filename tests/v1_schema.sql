-- The schema trialwatch 1 (a17250e) created: the starting point of the migration tests.

CREATE TABLE IF NOT EXISTS trials (
    trial_id TEXT NOT NULL,
    source TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',       -- present | missing | pending (never fetched yet)
    snapshot_id INTEGER,                          -- current snapshot
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
    run_id INTEGER
);
CREATE INDEX IF NOT EXISTS snapshots_trial ON snapshots (trial_id, source, id);

CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY,
    trial_id TEXT NOT NULL,
    source TEXT NOT NULL,
    snapshot_id INTEGER,                          -- the snapshot this change led to (NULL for 'missing')
    run_id INTEGER,
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
    run_id INTEGER,
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

    INSERT INTO search_fts (rowid, trial_id, source, title, conditions, interventions)
    SELECT s.id, s.trial_id, s.source,
        coalesce(json_extract(s.record, '$.public_title'), '') || char(10)
            || coalesce(json_extract(s.record, '$.scientific_title'), '') || char(10)
            || coalesce(json_extract(s.record, '$.acronym'), ''),
        (SELECT group_concat(value, char(10)) FROM json_each(s.record, '$.conditions')),
        (SELECT group_concat(value, char(10)) FROM json_each(s.record, '$.interventions'))
    FROM snapshots s WHERE s.id = NEW.snapshot_id AND NOT EXISTS (SELECT 1 FROM search_fts WHERE rowid = s.id);
END;
CREATE TRIGGER IF NOT EXISTS trials_search_update AFTER UPDATE OF snapshot_id ON trials
WHEN NEW.snapshot_id IS NOT OLD.snapshot_id BEGIN
    DELETE FROM search_fts WHERE rowid = OLD.snapshot_id;

    INSERT INTO search_fts (rowid, trial_id, source, title, conditions, interventions)
    SELECT s.id, s.trial_id, s.source,
        coalesce(json_extract(s.record, '$.public_title'), '') || char(10)
            || coalesce(json_extract(s.record, '$.scientific_title'), '') || char(10)
            || coalesce(json_extract(s.record, '$.acronym'), ''),
        (SELECT group_concat(value, char(10)) FROM json_each(s.record, '$.conditions')),
        (SELECT group_concat(value, char(10)) FROM json_each(s.record, '$.interventions'))
    FROM snapshots s WHERE s.id = NEW.snapshot_id AND NOT EXISTS (SELECT 1 FROM search_fts WHERE rowid = s.id);
END;
CREATE TRIGGER IF NOT EXISTS trials_search_delete AFTER DELETE ON trials BEGIN
    DELETE FROM search_fts WHERE rowid = OLD.snapshot_id;
END;
