"""The SQLite store: the only module that touches the database.

One file, opened through sqlite-utils, in WAL mode.  Tables (see the README's schema
section for every column):

``trials``     current state of each trial per source (present / missing), its current
               snapshot and content hash, failure streak.
``snapshots``  a version of a trial's normalized record, written only when the content
               hash changes, with the raw payload zlib-compressed so a better parser can
               re-read it later.
``changes``    field-level changes, each pointing at the snapshot it led to.
``runs``       one row per refresh run with its counts.
``fetch_log``  one row per HTTP request: URL, status, attempts, time, error.
``meta``       small key/value state (schema version, report cursors, data timestamps).
``failure_events``  a trial that began failing run after run ("failing"), or recovered
               ("recovered"): raised once per streak, delivered like changes.
``channels``   one row per configured alert channel: how far it has been served
               (cursors over ``changes`` and ``failure_events``) and its last outcome.
``deliveries`` which change or failure event went to which channel, and when.

A trial's snapshot, its changes and its ``trials`` row are written in one
transaction (:meth:`Store.save_update`): a crash leaves either all of them or none.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import sqlite_utils

from pipeline.clock import utcnow
from pipeline.codec import compress, decode_change, decompress, dumps, loads
from pipeline.errors import StoreError
from pipeline.plan import TrialState, Update

SCHEMA_VERSION = 1

#: Indexes one snapshot for ``trialwatch search`` (title, conditions, interventions).
_SEARCH_INSERT = """
    INSERT INTO search_fts (rowid, trial_id, source, title, conditions, interventions)
    SELECT s.id, s.trial_id, s.source,
        coalesce(json_extract(s.record, '$.public_title'), '') || char(10)
            || coalesce(json_extract(s.record, '$.scientific_title'), '') || char(10)
            || coalesce(json_extract(s.record, '$.acronym'), ''),
        (SELECT group_concat(value, char(10)) FROM json_each(s.record, '$.conditions')),
        (SELECT group_concat(value, char(10)) FROM json_each(s.record, '$.interventions'))
    FROM snapshots s WHERE s.id = {snapshot}"""
_NOT_INDEXED = " AND NOT EXISTS (SELECT 1 FROM search_fts WHERE rowid = s.id)"


def search_texts(record: dict[str, Any]) -> tuple[str, str, str]:
    """What ``trialwatch search`` indexes of a record: (titles, conditions, interventions)."""

    def lines(value: Any) -> str:
        if isinstance(value, list):
            return "\n".join(v for v in value if isinstance(v, str))
        return value if isinstance(value, str) else ""

    title = "\n".join(lines(record.get(k)) for k in ("public_title", "scientific_title", "acronym"))
    return title, lines(record.get("conditions")), lines(record.get("interventions"))

SCHEMA = """
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
""" + _SEARCH_INSERT.format(snapshot="NEW.snapshot_id") + _NOT_INDEXED + """;
END;
CREATE TRIGGER IF NOT EXISTS trials_search_update AFTER UPDATE OF snapshot_id ON trials
WHEN NEW.snapshot_id IS NOT OLD.snapshot_id BEGIN
    DELETE FROM search_fts WHERE rowid = OLD.snapshot_id;
""" + _SEARCH_INSERT.format(snapshot="NEW.snapshot_id") + _NOT_INDEXED + """;
END;
CREATE TRIGGER IF NOT EXISTS trials_search_delete AFTER DELETE ON trials BEGIN
    DELETE FROM search_fts WHERE rowid = OLD.snapshot_id;
END;
"""


class Store:
    """The database of one trialwatch installation."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0):
        self.path = Path(path)
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            if "full" in str(exc):  # no room for the file, its WAL or its schema
                raise StoreError(_describe(exc, self.path)) from None
            raise StoreError(f"cannot open database {path}: {exc}") from None
        except OSError as exc:
            raise StoreError(f"cannot create database folder for {path}: {exc.strerror or exc}") from None
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        if self.get_meta("schema_version") is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION))
        self._add_check_columns()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- transactions -------------------------------------------------------------

    def _write(self, fn, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` in one IMMEDIATE transaction; roll back and raise StoreError on failure."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(_describe(exc, self.path)) from None
        try:
            result = fn(*args, **kwargs)
            self.conn.execute("COMMIT")
            return result
        except BaseException as exc:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if isinstance(exc, sqlite3.Error):
                raise StoreError(_describe(exc, self.path)) from None
            raise

    # -- meta -----------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        self._write(
            self.conn.execute,
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- runs -------------------------------------------------------------------------

    def start_run(self, sources: Iterable[str], trigger: str, pid: int | None = None) -> int:
        def insert() -> int:
            cur = self.conn.execute(
                "INSERT INTO runs (started_at, sources, trigger, status, pid) VALUES (?, ?, ?, 'running', ?)",
                (utcnow(), ",".join(sources), trigger, pid),
            )
            return int(cur.lastrowid)

        return self._write(insert)

    def finish_run(self, run_id: int, counts: dict[str, int], status: str = "finished", note: str | None = None) -> None:
        cols = ("fetched", "new", "unchanged", "changed", "missing", "failed", "requests")
        values = [int(counts.get(c, 0)) for c in cols]
        self._write(
            self.conn.execute,
            f"UPDATE runs SET finished_at = ?, status = ?, note = ?, {', '.join(c + ' = ?' for c in cols)} WHERE id = ?",
            (utcnow(), status, note, *values, run_id),
        )

    def close_stale_runs(self) -> int:
        """Mark runs left 'running' by a killed process as interrupted (returns how many)."""

        def update() -> int:
            cur = self.conn.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = COALESCE(finished_at, ?) WHERE status = 'running'",
                (utcnow(),),
            )
            return cur.rowcount

        return self._write(update)

    def runs(self, limit: int = 20, source: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM runs"
        params: list[Any] = []
        if source:
            sql += " WHERE ',' || sources || ',' LIKE ?"
            params.append(f"%,{source},%")
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [dict(r) for r in self.db.query(sql, params)]

    # -- fetch log ----------------------------------------------------------------------

    def log_fetches(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        def insert() -> None:
            self.conn.executemany(
                "INSERT INTO fetch_log (run_id, source, trial_id, url, status, attempts, elapsed_ms, error, fetched_at)"
                " VALUES (:run_id, :source, :trial_id, :url, :status, :attempts, :elapsed_ms, :error, :fetched_at)",
                [
                    {
                        "run_id": r.get("run_id"),
                        "source": r["source"],
                        "trial_id": r.get("trial_id"),
                        "url": r["url"],
                        "status": r.get("status"),
                        "attempts": r.get("attempts", 1),
                        "elapsed_ms": r.get("elapsed_ms"),
                        "error": r.get("error"),
                        "fetched_at": r.get("fetched_at") or utcnow(),
                    }
                    for r in rows
                ],
            )

        self._write(insert)

    def prune_fetch_log(self, older_than_days: int) -> int:
        cutoff = datetime.fromtimestamp(time.time() - older_than_days * 86400, timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )

        def delete() -> int:
            return self.conn.execute("DELETE FROM fetch_log WHERE fetched_at < ?", (cutoff,)).rowcount

        return self._write(delete)

    # -- trial state --------------------------------------------------------------------

    def load_states(self, source: str, trial_ids: Iterable[str] | None = None, *, with_record: bool = False) -> dict[str, TrialState]:
        """Current state of the given trials (all of ``source`` when ``trial_ids`` is None)."""
        cols = "t.trial_id, t.source, t.state, t.snapshot_id, t.content_hash, t.fail_streak, t.alerted_failure"
        cols += ", t.vanish_streak"
        if with_record:
            cols += ", s.record, s.parser_version"
        sql = f"SELECT {cols} FROM trials t"
        if with_record:
            sql += " LEFT JOIN snapshots s ON s.id = t.snapshot_id"
        sql += " WHERE t.source = ?"
        out: dict[str, TrialState] = {}
        ids = None if trial_ids is None else list(trial_ids)
        chunks: list[list[str] | None] = [None] if ids is None else [ids[i : i + 500] for i in range(0, len(ids), 500)]
        for chunk in chunks:
            q = sql
            params: list[Any] = [source]
            if chunk is not None:
                if not chunk:
                    continue
                q += f" AND t.trial_id IN ({','.join('?' * len(chunk))})"
                params += chunk
            for row in self.conn.execute(q, params):
                state = TrialState(
                    trial_id=row[0],
                    source=row[1],
                    state=row[2],
                    snapshot_id=row[3],
                    content_hash=row[4],
                    fail_streak=row[5],
                    alerted_failure=bool(row[6]),
                    vanish_streak=row[7] or 0,
                )
                if with_record:
                    state.record = loads(row[8])
                    state.parser_version = row[9]
                out[state.trial_id] = state
        return out

    def last_checked(self, source: str) -> dict[str, str | None]:
        """When each trial of ``source`` was last checked (fetched, failed or missing)."""
        rows = self.conn.execute("SELECT trial_id, last_checked FROM trials WHERE source = ?", (source,))
        return dict(rows.fetchall())

    def load_state(self, trial_id: str, source: str) -> TrialState | None:
        """One trial's state, with its current record."""
        return self.load_states(source, [trial_id], with_record=True).get(trial_id)

    def load_snapshot(self, snapshot_id: int, *, with_raw: bool = True) -> dict[str, Any] | None:
        """One snapshot, record decoded; ``with_raw=False`` skips reading the raw payload."""
        cols = [d[0] for d in self.conn.execute("SELECT * FROM snapshots LIMIT 0").description]
        if not with_raw:
            cols = [c for c in cols if c != "raw"]
        row = self.conn.execute(f"SELECT {', '.join(cols)} FROM snapshots WHERE id = ?", (snapshot_id,)).fetchone()
        if row is None:
            return None
        out = dict(zip(cols, row))
        out["record"] = loads(out["record"])
        out["raw"] = decompress(out["raw"]) if with_raw else None
        return out

    def ensure_trials(self, source: str, trial_ids: Iterable[str]) -> None:
        """Register watched trials not seen before as 'pending' (cheap no-op for known ones)."""
        rows = [(t, source) for t in trial_ids]
        if not rows:
            return

        def insert() -> None:
            self.conn.executemany(
                "INSERT OR IGNORE INTO trials (trial_id, source, state) VALUES (?, ?, 'pending')", rows
            )

        self._write(insert)

    def save_update(self, update: Update, run_id: int | None) -> None:
        """Write one trial's outcome (snapshot, changes, state) in one transaction."""
        self._write(self._apply_update, update, run_id)

    def save_updates(self, updates: list[Update], run_id: int | None) -> None:
        """Several trials' outcomes; each trial's rows are written whole or not at all.

        Unchanged trials are batched (nothing but timestamps moves for them); a
        trial with a new snapshot or changes gets its own transaction.
        """
        light = [u for u in updates if not u.new_snapshot and not u.changes]
        heavy = [u for u in updates if u.new_snapshot or u.changes]
        if light:
            def batch() -> None:
                for u in light:
                    self._apply_update(u, run_id)

            self._write(batch)
        for u in heavy:
            self.save_update(u, run_id)

    def _apply_update(self, u: Update, run_id: int | None) -> None:
        now = u.detected_at or utcnow()
        conn = self.conn
        if u.outcome == "failed":
            conn.execute(
                "INSERT INTO trials (trial_id, source, state, fail_streak, last_error, last_checked)"
                " VALUES (?, ?, 'pending', 1, ?, ?)"
                " ON CONFLICT(trial_id, source) DO UPDATE SET fail_streak = fail_streak + 1,"
                " last_error = excluded.last_error, last_checked = excluded.last_checked",
                (u.trial_id, u.source, u.error, now),
            )
            self._note_check(u, run_id)
            return
        snapshot_id = None
        if u.new_snapshot:
            assert u.record is not None and u.content_hash is not None
            cur = conn.execute(
                "INSERT INTO snapshots (trial_id, source, content_hash, record, raw, raw_format, parser_version,"
                " fetched_at, registry_date, registry_version, backfilled, run_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    u.trial_id,
                    u.source,
                    u.content_hash,
                    dumps(u.record),
                    compress(u.raw),
                    u.raw_format,
                    u.parser_version,
                    now,
                    u.registry_date,
                    u.registry_version,
                    int(u.backfilled),
                    run_id,
                ),
            )
            snapshot_id = cur.lastrowid
            if u.outcome != "missing":  # it becomes current below: index it for search now
                conn.execute(
                    "INSERT INTO search_fts (rowid, trial_id, source, title, conditions, interventions)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (snapshot_id, u.trial_id, u.source, *search_texts(u.record)),
                )
        if u.changes:
            _insert_changes(conn, u.trial_id, u.source, snapshot_id, run_id, u.changes, now, u.backfilled)
        if u.outcome == "missing":
            conn.execute(
                "INSERT INTO trials (trial_id, source, state, missing_since, last_checked, fail_streak, last_error)"
                " VALUES (?, ?, 'missing', ?, ?, 0, NULL)"
                " ON CONFLICT(trial_id, source) DO UPDATE SET state = 'missing',"
                " missing_since = COALESCE(missing_since, excluded.missing_since),"
                " last_checked = excluded.last_checked, fail_streak = 0, last_error = NULL",
                (u.trial_id, u.source, now, now),
            )
            self._note_check(u, run_id)
            return
        record = u.record or {}
        title = record.get("public_title") or record.get("scientific_title")
        status = record.get("recruitment_status")
        last_updated = record.get("last_updated")
        if snapshot_id is not None:
            conn.execute(
                "INSERT INTO trials (trial_id, source, state, snapshot_id, content_hash, title, recruitment_status,"
                " last_updated, first_seen, last_seen, last_checked, last_changed, missing_since, fail_streak,"
                " last_error) VALUES (?, ?, 'present', ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, NULL)"
                " ON CONFLICT(trial_id, source) DO UPDATE SET state = 'present', snapshot_id = excluded.snapshot_id,"
                " content_hash = excluded.content_hash, title = excluded.title,"
                " recruitment_status = excluded.recruitment_status, last_updated = excluded.last_updated,"
                " first_seen = COALESCE(trials.first_seen, excluded.first_seen), last_seen = excluded.last_seen,"
                " last_checked = excluded.last_checked,"
                " last_changed = CASE WHEN ? THEN excluded.last_changed ELSE trials.last_changed END,"
                " missing_since = NULL, fail_streak = 0, last_error = NULL",
                (
                    u.trial_id,
                    u.source,
                    snapshot_id,
                    u.content_hash,
                    title,
                    status,
                    last_updated,
                    now,
                    now,
                    now,
                    now if u.changes else None,
                    1 if u.changes else 0,
                ),
            )
        else:
            conn.execute(
                "UPDATE trials SET state = 'present', last_seen = ?, last_checked = ?, missing_since = NULL,"
                " fail_streak = 0, last_error = NULL, last_updated = COALESCE(?, last_updated),"
                " last_changed = CASE WHEN ? THEN ? ELSE last_changed END"
                " WHERE trial_id = ? AND source = ?",
                (now, now, last_updated, 1 if u.changes else 0, now, u.trial_id, u.source),
            )
        self._note_check(u, run_id)

    def set_alerted_failure(self, keys: Iterable[tuple[str, str]], value: bool) -> None:
        rows = [(int(value), t, s) for t, s in keys]
        if rows:
            self._write(
                self.conn.executemany, "UPDATE trials SET alerted_failure = ? WHERE trial_id = ? AND source = ?", rows
            )

    # -- reading ----------------------------------------------------------------------------

    def trials(self, source: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM trials"
        params: list[Any] = []
        if source:
            sql += " WHERE source = ?"
            params.append(source)
        sql += " ORDER BY trial_id, source"
        return [dict(r) for r in self.db.query(sql, params)]

    def changes(
        self,
        *,
        since: str | None = None,
        trial_id: str | None = None,
        source: str | None = None,
        after_id: int | None = None,
        include_backfilled: bool = True,
        include_details: bool = False,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Stored changes, oldest first, with JSON columns decoded.

        "detail" rows (a registry's wording changing along with its normalized
        field) are left out unless ``include_details``.
        """
        sql = "SELECT * FROM changes WHERE 1=1"
        params: list[Any] = []
        if not include_details:
            sql += " AND kind != 'detail'"
        if since:
            sql += " AND detected_at >= ?"
            params.append(since)
        if trial_id:
            sql += " AND trial_id = ?"
            params.append(trial_id)
        if source:
            sql += " AND source = ?"
            params.append(source)
        if after_id is not None:
            sql += " AND id > ?"
            params.append(after_id)
        if not include_backfilled:
            sql += " AND backfilled = 0"
        sql += " ORDER BY id"
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        return [decode_change(dict(r)) for r in self.db.query(sql, params)]

    def iter_current_records(self, source: str | None = None) -> Iterator[dict[str, Any]]:
        """The current record of every present trial (streamed: the mirror can be large)."""
        sql = (
            "SELECT s.record FROM trials t JOIN snapshots s ON s.id = t.snapshot_id WHERE t.state = 'present'"
        )
        params: list[Any] = []
        if source:
            sql += " AND t.source = ?"
            params.append(source)
        sql += " ORDER BY t.trial_id, t.source"
        for (record,) in self.conn.execute(sql, params):
            yield loads(record)

    def snapshots_of(self, trial_id: str, source: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT id, trial_id, source, content_hash, fetched_at, registry_date, registry_version, backfilled,"
            " run_id, parser_version FROM snapshots WHERE trial_id = ?"
        )
        params: list[Any] = [trial_id]
        if source:
            sql += " AND source = ?"
            params.append(source)
        sql += " ORDER BY id"
        return [dict(r) for r in self.db.query(sql, params)]

    def trial_titles(self) -> dict[tuple[str, str], str | None]:
        """(trial_id, source) -> current title, for reports."""
        return {(t, s): title for t, s, title in self.conn.execute("SELECT trial_id, source, title FROM trials")}

    def failing_trials(self, min_streak: int = 1) -> list[dict[str, Any]]:
        """Trials whose last ``min_streak`` or more runs failed, longest streak first."""
        return [
            dict(r)
            for r in self.db.query(
                "SELECT trial_id, source, state, fail_streak, last_error, last_checked, alerted_failure FROM trials"
                " WHERE fail_streak >= ? ORDER BY fail_streak DESC, trial_id, source",
                [min_streak],
            )
        ]

    def last_run(self, source: str) -> dict[str, Any] | None:
        """The most recent run that covered ``source`` (None when it never ran)."""
        rows = self.runs(limit=1, source=source)
        return rows[0] if rows else None

    # -- failure alerts -------------------------------------------------------------------

    def note_failure_streaks(self, threshold: int, now: str | None = None) -> list[dict[str, Any]]:
        """Raise one 'failing' event per streak that reached ``threshold`` runs, one 'recovered' per end.

        ``trials.alerted_failure`` remembers that a streak's alert is out, so calling
        this after every run (or twice after one) raises nothing new until the trial
        recovers and fails again.  Returns the events it recorded.
        """
        now = now or utcnow()

        def note() -> list[dict[str, Any]]:
            conn = self.conn
            events: list[dict[str, Any]] = []
            failing = conn.execute(
                "SELECT trial_id, source, fail_streak, last_error FROM trials"
                " WHERE fail_streak >= ? AND alerted_failure = 0 ORDER BY trial_id, source",
                (threshold,),
            ).fetchall()
            for trial_id, source, streak, error in failing:
                events.append({"trial_id": trial_id, "source": source, "kind": "failing", "streak": streak,
                               "error": error, "detected_at": now})
            recovered = conn.execute(
                "SELECT t.trial_id, t.source, (SELECT e.streak FROM failure_events e WHERE e.trial_id = t.trial_id"
                " AND e.source = t.source AND e.kind = 'failing' ORDER BY e.id DESC LIMIT 1),"
                " (SELECT e.error FROM failure_events e WHERE e.trial_id = t.trial_id"
                " AND e.source = t.source AND e.kind = 'failing' ORDER BY e.id DESC LIMIT 1)"
                " FROM trials t WHERE t.alerted_failure = 1 AND t.fail_streak = 0 ORDER BY t.trial_id, t.source"
            ).fetchall()
            for trial_id, source, streak, error in recovered:
                events.append({"trial_id": trial_id, "source": source, "kind": "recovered", "streak": streak or 0,
                               "error": error, "detected_at": now})
            for e in events:
                cur = conn.execute(
                    "INSERT INTO failure_events (trial_id, source, kind, streak, error, detected_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (e["trial_id"], e["source"], e["kind"], e["streak"], e["error"], e["detected_at"]),
                )
                e["id"] = cur.lastrowid
                conn.execute(
                    "UPDATE trials SET alerted_failure = ? WHERE trial_id = ? AND source = ?",
                    (1 if e["kind"] == "failing" else 0, e["trial_id"], e["source"]),
                )
            return events

        return self._write(note)

    def failure_events(
        self, *, since: str | None = None, after_id: int | None = None, upto_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Recorded failure events, oldest first."""
        sql = "SELECT * FROM failure_events WHERE 1=1"
        params: list[Any] = []
        if since:
            sql += " AND detected_at >= ?"
            params.append(since)
        if after_id is not None:
            sql += " AND id > ?"
            params.append(after_id)
        if upto_id is not None:
            sql += " AND id <= ?"
            params.append(upto_id)
        return [dict(r) for r in self.db.query(sql + " ORDER BY id", params)]

    def max_ids(self) -> tuple[int, int]:
        """The highest change id and failure event id now stored (0 when none)."""
        (change,) = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM changes").fetchone()
        (failure,) = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM failure_events").fetchone()
        return int(change), int(failure)

    # -- report cursor --------------------------------------------------------------------

    def report_cursor(self) -> tuple[int, int]:
        """(change id, failure event id) reported up to by ``report --since last``."""
        change = self.get_meta("report_cursor_change")
        failure = self.get_meta("report_cursor_failure")
        return int(change or 0), int(failure or 0)

    def set_report_cursor(self, change_id: int, failure_id: int) -> None:
        def update() -> None:
            for key, value in (("report_cursor_change", change_id), ("report_cursor_failure", failure_id)):
                self.conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, str(value)),
                )

        self._write(update)

    # -- alert channels -------------------------------------------------------------------

    def ensure_channel(self, name: str, channel: str) -> dict[str, Any]:
        """The channel's row, created on first sight with its cursors at "now".

        A channel added to an installation with years of history starts with what
        happens from now on, not with a flood of old changes.
        """

        def ensure() -> None:
            change, failure = self.max_ids()
            self.conn.execute(
                "INSERT OR IGNORE INTO channels (name, channel, change_cursor, failure_cursor, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, channel, change, failure, utcnow()),
            )

        self._write(ensure)
        return self.channel(name)  # type: ignore[return-value]

    def channel(self, name: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM channels WHERE name = ?", [name]))
        return dict(rows[0]) if rows else None

    def channels(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.query("SELECT * FROM channels ORDER BY name")]

    def undelivered(self, name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, int]:
        """What the channel has not been sent yet, before its rule filters it.

        Returns (changes, failure events, change id upto, failure id upto): every
        non-backfilled change and every failure event past the channel's cursors, up to
        the ids stored when this was read.  Backfilled changes are history, never alerts;
        "detail" rows (the registry's wording moving with its normalized field) would
        say the same thing twice.
        """
        row = self.channel(name)
        if row is None:
            raise KeyError(name)
        upto_change, upto_failure = self.max_ids()
        changes = [
            decode_change(dict(r))
            for r in self.db.query(
                "SELECT * FROM changes c WHERE c.id > ? AND c.id <= ? AND c.backfilled = 0 AND c.kind != 'detail'"
                " AND NOT EXISTS"
                " (SELECT 1 FROM deliveries d WHERE d.channel = ? AND d.item = 'change' AND d.item_id = c.id)"
                " ORDER BY c.id",
                [row["change_cursor"], upto_change, name],
            )
        ]
        failures = [
            dict(r)
            for r in self.db.query(
                "SELECT * FROM failure_events f WHERE f.id > ? AND f.id <= ? AND NOT EXISTS"
                " (SELECT 1 FROM deliveries d WHERE d.channel = ? AND d.item = 'failure' AND d.item_id = f.id)"
                " ORDER BY f.id",
                [row["failure_cursor"], upto_failure, name],
            )
        ]
        return changes, failures, max(upto_change, row["change_cursor"]), max(upto_failure, row["failure_cursor"])

    def record_delivery(
        self,
        name: str,
        change_ids: Iterable[int],
        failure_ids: Iterable[int],
        upto_change: int,
        upto_failure: int,
    ) -> None:
        """After a successful send: note what went out and move the channel's cursors, at once."""
        now = utcnow()

        def record() -> None:
            rows = [(name, "change", i, now) for i in change_ids] + [(name, "failure", i, now) for i in failure_ids]
            self.conn.executemany(
                "INSERT OR IGNORE INTO deliveries (channel, item, item_id, delivered_at) VALUES (?, ?, ?, ?)", rows
            )
            self.conn.execute(
                "UPDATE channels SET change_cursor = MAX(change_cursor, ?), failure_cursor = MAX(failure_cursor, ?),"
                " last_attempt = ?, last_success = ?, last_error = NULL, failing_since = NULL WHERE name = ?",
                (upto_change, upto_failure, now, now, name),
            )

        self._write(record)

    def advance_channel(self, name: str, upto_change: int, upto_failure: int) -> None:
        """Nothing past the cursors was wanted by the channel's rule: skip over it."""
        self._write(
            self.conn.execute,
            "UPDATE channels SET change_cursor = MAX(change_cursor, ?), failure_cursor = MAX(failure_cursor, ?)"
            " WHERE name = ?",
            (upto_change, upto_failure, name),
        )

    def record_delivery_failure(self, name: str, error: str) -> None:
        """A send failed: keep the cursors (the backlog waits for the next run), note why."""
        now = utcnow()
        self._write(
            self.conn.execute,
            "UPDATE channels SET last_attempt = ?, last_error = ?, failing_since = COALESCE(failing_since, ?)"
            " WHERE name = ?",
            (now, error, now, name),
        )

    def integrity_check(self) -> str:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]

    # -- the mirror: batched saves, query watches ------------------------------------------

    def save_updates_batch(
        self,
        updates: list[Update],
        run_id: int | None,
        *,
        query: str | None = None,
        members: Iterable[str] = (),
        member_state: str = "member",
    ) -> None:
        """Several trials' outcomes in ONE transaction (a page of a query watch).

        Every trial is still written whole or not at all (the batch is); with
        ``query``, the ``members`` are recorded as matching it in the same transaction.
        """
        member_rows = list(members)

        def batch() -> None:
            for u in updates:
                self._apply_update(u, run_id)
            if query is not None and member_rows:
                self._upsert_members(query, member_rows, member_state)

        self._write(batch)

    def _upsert_members(self, query: str, trial_ids: list[str], state: str) -> None:
        now = utcnow()
        self.conn.executemany(
            "INSERT INTO query_members (query, trial_id, state, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(query, trial_id) DO UPDATE SET state = excluded.state, last_seen = excluded.last_seen",
            [(query, t, state, now, now) for t in trial_ids],
        )

    def set_query_members(self, query: str, trial_ids: Iterable[str], state: str) -> None:
        """Record ``trial_ids`` as members of ``query`` in ``state`` (member | left | missing)."""
        rows = list(trial_ids)
        if rows:
            self._write(self._upsert_members, query, rows, state)

    def query_members(self, query: str, state: str | None = "member") -> set[str]:
        """Trial IDs of ``query`` in ``state`` (all when None)."""
        sql = "SELECT trial_id FROM query_members WHERE query = ?"
        params: list[Any] = [query]
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        return {row[0] for row in self.conn.execute(sql, params)}

    def query_watch(self, name: str) -> dict[str, Any] | None:
        """The stored sync state of one query watch."""
        row = self.conn.execute("SELECT * FROM query_watches WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        cols = [d[0] for d in self.conn.execute("SELECT * FROM query_watches LIMIT 0").description]
        return dict(zip(cols, row))

    def query_watches(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.query("SELECT * FROM query_watches ORDER BY name")]

    def save_query_watch(self, name: str, params: str, **values: Any) -> None:
        """Create or update a query watch's sync state (only the given columns move)."""
        allowed = {"loaded_at", "sync_date", "data_timestamp", "last_sync", "last_full_sweep", "members"}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"unknown query_watches columns: {sorted(unknown)}")

        def upsert() -> None:
            self.conn.execute(
                "INSERT INTO query_watches (name, params) VALUES (?, ?) ON CONFLICT(name) DO NOTHING", (name, params)
            )
            sets = ["params = ?"] + [f"{k} = ?" for k in values]
            self.conn.execute(
                f"UPDATE query_watches SET {', '.join(sets)} WHERE name = ?", (params, *values.values(), name)
            )
            if "members" not in values:
                self.conn.execute(
                    "UPDATE query_watches SET members = (SELECT count(*) FROM query_members"
                    " WHERE query = ? AND state = 'member') WHERE name = ?",
                    (name, name),
                )

        self._write(upsert)

    # -- history backfill ----------------------------------------------------------------------

    def backfilled_versions(self, trial_id: str, source: str) -> dict[int, int]:
        """Registry version -> snapshot id of the versions already backfilled."""
        return {
            row[0]: row[1]
            for row in self.conn.execute(
                "SELECT registry_version, id FROM snapshots WHERE trial_id = ? AND source = ? AND backfilled = 1",
                (trial_id, source),
            )
        }

    def save_backfilled_version(
        self,
        trial_id: str,
        source: str,
        *,
        record: dict[str, Any],
        content_hash: str,
        raw: bytes | None,
        raw_format: str,
        parser_version: int,
        registry_version: int,
        registry_date: str | None,
        changes: list[dict[str, Any]],
        detected_at: str,
        run_id: int | None,
    ) -> int | None:
        """One registry version as a snapshot, with the changes it made (one transaction).

        The snapshot and its changes are marked ``backfilled``; the trial's current
        snapshot is not touched (see :meth:`adopt_backfilled`).  Returns the snapshot id,
        or None when that version was stored before (idempotent).
        """

        def insert() -> int | None:
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO snapshots (trial_id, source, content_hash, record, raw, raw_format,"
                " parser_version, fetched_at, registry_date, registry_version, backfilled, run_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
                (
                    trial_id,
                    source,
                    content_hash,
                    dumps(record),
                    compress(raw),
                    raw_format,
                    parser_version,
                    utcnow(),
                    registry_date,
                    registry_version,
                    run_id,
                ),
            )
            if cur.rowcount == 0:
                return None
            snapshot_id = int(cur.lastrowid)
            _insert_changes(self.conn, trial_id, source, snapshot_id, run_id, changes, detected_at, True)
            return snapshot_id

        return self._write(insert)

    def finish_backfill(self, trial_id: str, source: str, versions: int) -> bool:
        """Record a finished backfill; adopt the latest version as current if there is none.

        A trial with a live current snapshot keeps it (the live record stays current).
        A trial never fetched live gets its newest backfilled version as current, so the
        next live refresh diffs against it.  Returns True when the version was adopted.
        """

        def update() -> bool:
            row = self.conn.execute(
                "SELECT id, content_hash, record FROM snapshots WHERE trial_id = ? AND source = ? AND backfilled = 1"
                " ORDER BY registry_version DESC LIMIT 1",
                (trial_id, source),
            ).fetchone()
            adopted = False
            current = self.conn.execute(
                "SELECT snapshot_id FROM trials WHERE trial_id = ? AND source = ?", (trial_id, source)
            ).fetchone()
            if row is not None and (current is None or current[0] is None):
                record = loads(row[2]) or {}
                now = utcnow()
                self.conn.execute(
                    "INSERT INTO trials (trial_id, source, state, snapshot_id, content_hash, title, recruitment_status,"
                    " last_updated, first_seen, last_seen, last_checked, fail_streak)"
                    " VALUES (?, ?, 'present', ?, ?, ?, ?, ?, ?, ?, ?, 0)"
                    " ON CONFLICT(trial_id, source) DO UPDATE SET state = 'present', snapshot_id = excluded.snapshot_id,"
                    " content_hash = excluded.content_hash, title = excluded.title,"
                    " recruitment_status = excluded.recruitment_status, last_updated = excluded.last_updated,"
                    " first_seen = COALESCE(trials.first_seen, excluded.first_seen), last_seen = excluded.last_seen,"
                    " last_checked = excluded.last_checked, fail_streak = 0, last_error = NULL",
                    (
                        trial_id,
                        source,
                        row[0],
                        row[1],
                        record.get("public_title") or record.get("scientific_title"),
                        record.get("recruitment_status"),
                        record.get("last_updated"),
                        now,
                        now,
                        now,
                    ),
                )
                adopted = True
            self.conn.execute(
                "INSERT INTO backfills (trial_id, source, versions, done_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(trial_id, source) DO UPDATE SET versions = excluded.versions, done_at = excluded.done_at",
                (trial_id, source, versions, utcnow()),
            )
            return adopted

        return self._write(update)

    def backfilled_trials(self, source: str = "ctgov") -> set[str]:
        """Trials whose history was backfilled."""
        return {r[0] for r in self.conn.execute("SELECT trial_id FROM backfills WHERE source = ?", (source,))}

    # -- full-text search and export ---------------------------------------------------------------

    SEARCH_INDEX_VERSION = "1"

    def ensure_search_index(self) -> bool:
        """Index snapshots written before the search index existed (once); True if rebuilt."""
        if self.get_meta("search_index") == self.SEARCH_INDEX_VERSION:
            return False
        self.rebuild_search_index()
        return True

    def rebuild_search_index(self) -> None:
        """Re-index every trial's current snapshot from scratch."""

        def rebuild() -> None:
            self.conn.execute("DELETE FROM search_fts")
            self.conn.execute(
                _SEARCH_INSERT.format(snapshot="s.id").replace(
                    "FROM snapshots s WHERE s.id = s.id",
                    "FROM trials t JOIN snapshots s ON s.id = t.snapshot_id",
                )
            )
            self.conn.execute(
                "INSERT INTO meta (key, value) VALUES ('search_index', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (self.SEARCH_INDEX_VERSION,),
            )

        self._write(rebuild)

    def search(self, match: str, *, limit: int = 20, source: str | None = None) -> list[dict[str, Any]]:
        """Trials whose current title, conditions or interventions match an FTS5 expression.

        Best match first (bm25, titles weighted above conditions and interventions).
        """
        sql = (
            "SELECT f.trial_id, f.source, t.state, t.recruitment_status, t.title,"
            " snippet(search_fts, -1, '[', ']', '...', 12) AS snippet,"
            " bm25(search_fts, 0, 0, 3.0, 2.0, 1.0) AS score"
            " FROM search_fts f JOIN trials t ON t.snapshot_id = f.rowid"
            " WHERE search_fts MATCH ?"
        )
        params: list[Any] = [match]
        if source:
            sql += " AND f.source = ?"
            params.append(source)
        sql += " ORDER BY score LIMIT ?"
        params.append(limit)
        try:
            return [dict(r) for r in self.db.query(sql, params)]
        except sqlite3.OperationalError as exc:
            raise StoreError(f"bad search expression {match!r}: {exc}") from None

    def iter_current_json(self, source: str | None = None, *, include_missing: bool = False) -> Iterator[str]:
        """The current record of each trial as stored JSON text (streamed, by trial ID)."""
        sql = "SELECT s.record FROM trials t JOIN snapshots s ON s.id = t.snapshot_id"
        sql += " WHERE t.state IN ('present', 'missing')" if include_missing else " WHERE t.state = 'present'"
        params: list[Any] = []
        if source:
            sql += " AND t.source = ?"
            params.append(source)
        sql += " ORDER BY t.trial_id, t.source"
        cur = self.conn.cursor()
        cur.arraysize = 500
        for (record,) in cur.execute(sql, params):
            yield record



    # -- the vanish streak and the run counter (issue 9) ---------------------------------------

    #: Columns added to ``trials`` after the first schema (one guarded ALTER TABLE each):
    #: ``vanish_streak`` (answered runs in a row in which the registry denied a present
    #: trial while its deletion was withheld) and ``checked_run`` (the run that last
    #: checked the trial: a counter, so no clock step can reorder the checks).
    CHECK_COLUMNS = (
        ("vanish_streak", "INTEGER NOT NULL DEFAULT 0"),
        ("checked_run", "INTEGER"),
    )

    def _add_check_columns(self) -> None:
        def columns() -> set[str]:
            return {row[1] for row in self.conn.execute("PRAGMA table_info(trials)")}

        if all(name in columns() for name, _ in self.CHECK_COLUMNS):
            return

        def add() -> None:
            have = columns()  # again, inside the transaction: another process may have added them
            for name, decl in self.CHECK_COLUMNS:
                if name not in have:
                    self.conn.execute(f"ALTER TABLE trials ADD COLUMN {name} {decl}")

        self._write(add)

    def _note_check(self, u: Update, run_id: int | None) -> None:
        """Record the run that checked the trial and its vanish streak (inside _apply_update's transaction).

        A withheld vanish adds one answered run without the trial; any other failure
        leaves the streak alone (no answer); any answer that is believed resets it.
        """
        if u.outcome == "failed":
            streak = "vanish_streak + 1" if u.suspected_vanish else "vanish_streak"
        else:
            streak = "0"
        self.conn.execute(
            f"UPDATE trials SET vanish_streak = {streak}, checked_run = COALESCE(?, checked_run)"
            " WHERE trial_id = ? AND source = ?",
            (run_id, u.trial_id, u.source),
        )

    def check_order(self, source: str) -> dict[str, tuple[int, str]]:
        """Per trial of ``source``: (the run that last checked it, 0 if none; when, as a tie-break)."""
        rows = self.conn.execute("SELECT trial_id, checked_run, last_checked FROM trials WHERE source = ?", (source,))
        return {t: (run or 0, checked or "") for t, run, checked in rows}


def _insert_changes(
    conn: sqlite3.Connection,
    trial_id: str,
    source: str,
    snapshot_id: int | None,
    run_id: int | None,
    changes: list[dict[str, Any]],
    detected_at: str,
    backfilled: bool,
) -> None:
    """Write change rows (inside the caller's transaction)."""
    conn.executemany(
        "INSERT INTO changes (trial_id, source, snapshot_id, run_id, field, old, new, added, removed,"
        " significance, kind, detected_at, backfilled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                trial_id,
                source,
                snapshot_id,
                run_id,
                c["field"],
                dumps(c.get("old")),
                dumps(c.get("new")),
                None if c.get("added") is None else dumps(c["added"]),
                None if c.get("removed") is None else dumps(c["removed"]),
                c["significance"],
                c.get("kind", "field"),
                detected_at,
                int(backfilled),
            )
            for c in changes
        ],
    )


def _describe(exc: sqlite3.Error, path: Path) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return f"database {path} is locked by another process (try again when it finishes): {text}"
    if "full" in text:
        return f"disk full while writing {path}: nothing was half-written; free space and run again"
    if "readonly" in text or "read-only" in text:
        return f"database {path} is read-only: {text}"
    return f"database error on {path}: {text}"
