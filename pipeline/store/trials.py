"""Trial state: the write path (one trial's snapshot, changes and state at once) and its reads.

The write path is plain SQL with statement texts built once and cached, not
sqlite-utils' ``insert``/``upsert``: those read the table's columns on every call, and
this is the hot path (a first load writes 20,000 trials; see ``bench/run.py``).
:func:`upsert_trial` is the only statement that writes a ``trials`` row; the
rules for how each column moves when the row exists are in :data:`_ON_CONFLICT`.
"""

from __future__ import annotations

import sqlite3
from functools import cached_property, lru_cache
from typing import Any, Iterable

from pipeline.clock import utcnow
from pipeline.codec import compress, decode_change, decompress, dumps, loads
from pipeline.plan import TrialState, Update
from pipeline.store.base import StoreBase, in_chunks
from pipeline.store.search import search_texts
from pipeline.trial_facts import facts_of

#: How a column of an existing ``trials`` row moves (default: it takes the new value).
_ON_CONFLICT = {
    # 'pending' (a trial that only ever failed) never overwrites a known state
    "state": "CASE WHEN excluded.state = 'pending' THEN trials.state ELSE excluded.state END",
    "first_seen": "COALESCE(trials.first_seen, excluded.first_seen)",
    # the first run it went missing; cleared when it is back
    "missing_since": "CASE WHEN excluded.missing_since IS NULL THEN NULL"
    " ELSE COALESCE(trials.missing_since, excluded.missing_since) END",
    # 0 ends a streak; otherwise the number of failed runs to add
    "fail_streak": "CASE WHEN excluded.fail_streak = 0 THEN 0 ELSE trials.fail_streak + excluded.fail_streak END",
    # the same for the answered runs in a row that denied the trial (see check_values)
    "vanish_streak": "CASE WHEN excluded.vanish_streak = 0 THEN 0"
    " ELSE trials.vanish_streak + excluded.vanish_streak END",
}


@lru_cache(maxsize=None)
def _upsert_sql(columns: tuple[str, ...]) -> str:
    sets = ", ".join(f"{c} = {_ON_CONFLICT.get(c, 'excluded.' + c)}" for c in columns)
    return (
        f"INSERT INTO trials (trial_id, source, {', '.join(columns)}) VALUES (?, ?{', ?' * len(columns)})"
        f" ON CONFLICT(trial_id, source) DO UPDATE SET {sets}"
    )


def upsert_trial(conn: sqlite3.Connection, trial_id: str, source: str, values: dict[str, Any]) -> None:
    """Create or move one ``trials`` row; columns not in ``values`` keep what they hold."""
    conn.execute(_upsert_sql(tuple(values)), (trial_id, source, *values.values()))


def insert_snapshot(
    conn: sqlite3.Connection,
    trial_id: str,
    source: str,
    *,
    content_hash: str,
    record: dict[str, Any],
    raw: bytes | None,
    raw_format: str | None,
    parser_version: int,
    fetched_at: str,
    registry_date: str | None,
    registry_version: int | None,
    backfilled: bool,
    run_id: int | None,
    or_ignore: bool = False,
    raw_zlib: bytes | None = None,
) -> int | None:
    """Write one snapshot row; its id (None when ``or_ignore`` and that version exists).

    Its ``snapshot_facts`` row is written with it (:func:`pipeline.trial_facts.facts_of`
    the record, the secondary IDs apart): the trial pass reads that, not the record.

    ``raw_zlib``: the raw payload already compressed (then ``raw`` is not used).
    """
    cur = conn.execute(
        f"INSERT {'OR IGNORE ' if or_ignore else ''}INTO snapshots (trial_id, source, content_hash, record, raw,"
        " raw_format, parser_version, fetched_at, registry_date, registry_version, backfilled, run_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (trial_id, source, content_hash, dumps(record), compress(raw) if raw_zlib is None else raw_zlib, raw_format,
         parser_version, fetched_at, registry_date, registry_version, int(backfilled), run_id),
    )
    if not cur.rowcount:
        return None
    snapshot_id = int(cur.lastrowid)
    facts = facts_of(record)
    conn.execute(
        "INSERT INTO snapshot_facts (snapshot_id, raw_format, fetched_at, registry_date, backfilled, run_id,"
        " secondary_ids, facts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (snapshot_id, raw_format, fetched_at, registry_date, int(backfilled), run_id,
         dumps(record.get("secondary_ids") or []), dumps(facts)),
    )
    return snapshot_id


def insert_changes(
    conn: sqlite3.Connection,
    trial_id: str,
    source: str,
    snapshot_id: int | None,
    run_id: int | None,
    changes: list[dict[str, Any]],
    detected_at: str,
    backfilled: bool,
    registry_date: str | None = None,
) -> None:
    """Write change rows (inside the caller's transaction).

    ``detected_at`` is when trialwatch recorded them (``--since`` windows select on
    it); ``registry_date`` the registry's own date of the change, when it gives one
    (an imported export's "last refreshed" date, a backfilled version's date).
    """
    conn.executemany(
        "INSERT INTO changes (trial_id, source, snapshot_id, run_id, field, old, new, added, removed,"
        " significance, kind, detected_at, backfilled, registry_date)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                registry_date,
            )
            for c in changes
        ],
    )


def present_values(record: dict[str, Any], snapshot_id: int, content_hash: str | None, now: str) -> dict[str, Any]:
    """The ``trials`` columns for a trial whose current snapshot becomes ``snapshot_id``."""
    return {
        "state": "present",
        "snapshot_id": snapshot_id,
        "content_hash": content_hash,
        "title": record.get("public_title") or record.get("scientific_title"),
        "recruitment_status": record.get("recruitment_status"),
        "last_updated": record.get("last_updated"),
        "first_seen": now,
        "last_seen": now,
        "last_checked": now,
        "missing_since": None,
        "fail_streak": 0,
        "last_error": None,
    }


def check_values(u: Update, run_id: int | None) -> dict[str, Any]:
    """The ``trials`` columns every checked trial moves: its vanish streak and the run that checked it.

    A withheld vanish (:func:`pipeline.plan.judge_vanished`) adds one answered run
    without the trial; any other failure is no answer and leaves the streak alone
    (the column is not written); any answer that is believed (found, missing) resets
    it.  ``checked_run`` orders the next runs' checks (:meth:`TrialsMixin.check_order`).
    """
    values: dict[str, Any] = {}
    if u.outcome != "failed":
        values["vanish_streak"] = 0
    elif u.suspected_vanish:
        values["vanish_streak"] = 1
    if run_id is not None:
        values["checked_run"] = run_id
    return values


class TrialsMixin(StoreBase):
    # -- writing ------------------------------------------------------------------------

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
        """One trial's rows, inside the caller's transaction."""
        now = u.detected_at or utcnow()
        conn = self.conn
        if u.outcome == "failed":
            upsert_trial(conn, u.trial_id, u.source,
                         {"state": "pending", "fail_streak": 1, "last_error": u.error, "last_checked": now,
                          **check_values(u, run_id)})
            return
        snapshot_id = None
        if u.new_snapshot:
            assert u.record is not None and u.content_hash is not None
            snapshot_id = insert_snapshot(
                conn, u.trial_id, u.source, content_hash=u.content_hash, record=u.record, raw=u.raw,
                raw_format=u.raw_format, parser_version=u.parser_version, fetched_at=now,
                registry_date=u.registry_date, registry_version=u.registry_version, backfilled=u.backfilled,
                run_id=run_id, raw_zlib=u.raw_zlib,
            )
            if u.outcome != "missing":  # it becomes current below: index it for search now
                conn.execute(
                    "INSERT INTO search_fts (rowid, trial_id, source, title, conditions, interventions)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (snapshot_id, u.trial_id, u.source, *search_texts(u.record)),
                )
        if u.changes:
            insert_changes(conn, u.trial_id, u.source, snapshot_id, run_id, u.changes, now, u.backfilled,
                           u.registry_date)
        if u.outcome == "missing":
            upsert_trial(conn, u.trial_id, u.source, {"state": "missing", "missing_since": now, "last_checked": now,
                                                      "fail_streak": 0, "last_error": None,
                                                      **check_values(u, run_id)})
            return
        record = u.record or {}
        if snapshot_id is not None:
            values = present_values(record, snapshot_id, u.content_hash, now)
        else:  # seen again, same content: only the times move
            values = {"state": "present", "last_seen": now, "last_checked": now, "missing_since": None,
                      "fail_streak": 0, "last_error": None}
            if record.get("last_updated") is not None:
                values["last_updated"] = record["last_updated"]
        if u.changes:
            values["last_changed"] = now
        values.update(check_values(u, run_id))
        upsert_trial(conn, u.trial_id, u.source, values)

    # -- reading ----------------------------------------------------------------------------

    def load_states(self, source: str, trial_ids: Iterable[str] | None = None, *, with_record: bool = False) -> dict[str, TrialState]:
        """Current state of the given trials (all of ``source`` when ``trial_ids`` is None)."""
        cols = ("t.trial_id, t.source, t.state, t.snapshot_id, t.content_hash, t.fail_streak, t.alerted_failure,"
                " t.vanish_streak")
        if with_record:
            cols += ", s.record, s.parser_version"
        sql = f"SELECT {cols} FROM trials t"
        if with_record:
            sql += " LEFT JOIN snapshots s ON s.id = t.snapshot_id"
        sql += " WHERE t.source = ?"
        out: dict[str, TrialState] = {}
        chunks = [([], "")] if trial_ids is None else [
            (chunk, f" AND t.trial_id IN ({marks})") for chunk, marks in in_chunks(trial_ids)]
        for chunk, where in chunks:
            for row in self.conn.execute(sql + where, [source, *chunk]):
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

    def load_state(self, trial_id: str, source: str) -> TrialState | None:
        """One trial's state, with its current record."""
        return self.load_states(source, [trial_id], with_record=True).get(trial_id)

    def check_order(self, source: str) -> dict[str, tuple[int, str]]:
        """Per trial of ``source``: (the run that last checked it, 0 if none; when, as a tie-break).

        By run number, not by the clock: a clock that ran ahead for a while cannot push
        the trials it stamped to the back of the queue.
        """
        rows = self.conn.execute("SELECT trial_id, checked_run, last_checked FROM trials WHERE source = ?", (source,))
        return {t: (run or 0, checked or "") for t, run, checked in rows}

    @cached_property
    def _snapshot_columns(self) -> list[str]:
        # Read once per store: a refresh loads the stored snapshot of every changed trial.
        return [d[0] for d in self.conn.execute("SELECT * FROM snapshots LIMIT 0").description]

    def load_snapshot(self, snapshot_id: int, *, with_raw: bool = True) -> dict[str, Any] | None:
        """One snapshot, record decoded; ``with_raw=False`` skips reading the raw payload."""
        cols = self._snapshot_columns
        if not with_raw:
            cols = [c for c in cols if c != "raw"]
        row = self.conn.execute(f"SELECT {', '.join(cols)} FROM snapshots WHERE id = ?", (snapshot_id,)).fetchone()
        if row is None:
            return None
        out = dict(zip(cols, row))
        out["record"] = loads(out["record"])
        out["raw"] = decompress(out["raw"]) if with_raw else None
        return out

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
        include_events: bool = True,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Stored changes, oldest first, with JSON columns decoded.

        "detail" rows (a registry's wording changing along with its normalized
        field) are left out unless ``include_details``; discrepancy and flag events
        (:mod:`pipeline.store.flags`) are left out when ``include_events`` is False.
        """
        sql = "SELECT * FROM changes WHERE 1=1"
        params: list[Any] = []
        if not include_details:
            sql += " AND kind != 'detail'"
        if not include_events:
            sql += " AND kind NOT IN ('discrepancy', 'flag')"
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

    def snapshot_last_updated(self, trial_id: str) -> dict[int, str | None]:
        """Snapshot id -> the record's ``last_updated`` (the registry's date), for ``history``."""
        return {
            int(i): d
            for i, d in self.conn.execute(
                "SELECT id, json_extract(record, '$.last_updated') FROM snapshots WHERE trial_id = ?", (trial_id,)
            )
        }

    def trial_titles(self) -> dict[tuple[str, str], str | None]:
        """(trial_id, source) -> current title, for reports."""
        return {(t, s): title for t, s, title in self.conn.execute("SELECT trial_id, source, title FROM trials")}
