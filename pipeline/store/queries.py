"""Query watches (the mirror of a ClinicalTrials.gov search) and which trials match each."""

from __future__ import annotations

from typing import Any, Iterable

from pipeline.clock import utcnow
from pipeline.plan import Update
from pipeline.store.base import in_chunks
from pipeline.store.trials import TrialsMixin, insert_changes


def query_event(query: str, before: str | None, after: str) -> dict[str, Any] | None:
    """The ``query`` change for a trial whose membership of ``query`` goes ``before`` -> ``after`` (pure).

    None when it neither starts nor stops matching.  ``field`` is the query's name;
    ``old`` / ``new`` are small objects: ``{"state": ...}`` (``member``, ``left``,
    ``missing``), ``new`` with a human ``summary``; ``old`` is null for a trial that
    had never matched.
    """
    was, now = before == "member", after == "member"
    if was == now:
        return None
    if now:
        summary = f"now matches query {query}"
    elif after == "missing":
        summary = f"no longer matches query {query}: the registry no longer returns it"
    else:
        summary = f"no longer matches query {query}"
    return {
        "field": query,
        "kind": "query",
        "significance": "query",
        "old": {"state": before} if before else None,
        "new": {"state": after, "summary": summary},
    }


class QueriesMixin(TrialsMixin):
    def save_updates_batch(
        self,
        updates: list[Update],
        run_id: int | None,
        *,
        query: str | None = None,
        members: Iterable[str] = (),
        member_state: str = "member",
        left: Iterable[str] = (),
        announce: bool = False,
    ) -> None:
        """Several trials' outcomes in ONE transaction (a page of a query watch).

        Every trial is still written whole or not at all (the batch is); with
        ``query``, the ``members`` are recorded as matching it (``left``: as no longer
        matching) in the same transaction, with their query events when ``announce``
        (see :meth:`set_query_members`).
        """
        member_rows = list(members)
        left_rows = list(left)

        def batch() -> None:
            for u in updates:
                self._apply_update(u, run_id)
            if query is not None:
                source = updates[0].source if updates else "ctgov"
                if member_rows:
                    self._upsert_members(query, member_rows, member_state, run_id=run_id, announce=announce,
                                         source=source)
                if left_rows:
                    self._upsert_members(query, left_rows, "left", run_id=run_id, announce=announce, source=source)

        self._write(batch)

    def save_watch_tags(self, tags: dict[str, Iterable[str]]) -> None:
        """Replace ``watch_tags`` with the config's ``[watch.tags]`` (tag -> trial IDs), if it differs."""
        rows = sorted({(tag, trial_id) for tag, ids in tags.items() for trial_id in ids})
        stored = self.conn.execute("SELECT tag, trial_id FROM watch_tags ORDER BY tag, trial_id").fetchall()
        if [tuple(r) for r in stored] == rows:
            return  # the usual case: no write at all

        def replace() -> None:
            self.conn.execute("DELETE FROM watch_tags")
            self.conn.executemany("INSERT INTO watch_tags (tag, trial_id) VALUES (?, ?)", rows)

        self._write(replace)

    def _upsert_members(self, query: str, trial_ids: list[str], state: str, *, run_id: int | None = None,
                        announce: bool = False, source: str = "ctgov") -> None:
        now = utcnow()
        if announce:
            before = self._member_states(query, trial_ids)
            events = [
                (t, query_event(query, before.get(t), state))
                for t in dict.fromkeys(trial_ids)
            ]
            for trial_id, event in events:
                if event is not None:
                    insert_changes(self.conn, trial_id, source, None, run_id, [event], now, False)
        self.conn.executemany(
            "INSERT INTO query_members (query, trial_id, state, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(query, trial_id) DO UPDATE SET state = excluded.state, last_seen = excluded.last_seen",
            [(query, t, state, now, now) for t in trial_ids],
        )

    def _member_states(self, query: str, trial_ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for chunk, marks in in_chunks(trial_ids):
            out.update(self.conn.execute(
                f"SELECT trial_id, state FROM query_members WHERE query = ? AND trial_id IN ({marks})",
                [query, *chunk],
            ).fetchall())
        return out

    def set_query_members(self, query: str, trial_ids: Iterable[str], state: str, *, run_id: int | None = None,
                          announce: bool = False, source: str = "ctgov") -> None:
        """Record ``trial_ids`` as members of ``query`` in ``state`` (member | left | missing).

        With ``announce``, a trial that starts matching (was not a member) or stops
        matching (was one) gets a ``query`` change (:func:`query_event`) in the same
        transaction as its membership row.  The mirror announces nothing on a query's
        first complete load, so loading 20,000 matches does not flood the change log.
        """
        rows = list(trial_ids)
        if rows:
            self._write(self._upsert_members, query, rows, state, run_id=run_id, announce=announce, source=source)

    def query_member_rows(self, query: str, state: str | None = "member") -> list[dict[str, Any]]:
        """The members of ``query`` (all states when None) with their titles and state, by trial ID."""
        sql = ("SELECT m.trial_id, m.state AS membership, m.first_seen, m.last_seen, t.title, t.recruitment_status,"
               " t.state FROM query_members m LEFT JOIN trials t ON t.trial_id = m.trial_id AND t.source = 'ctgov'"
               " WHERE m.query = ?")
        params: list[Any] = [query]
        if state is not None:
            sql += " AND m.state = ?"
            params.append(state)
        return [dict(r) for r in self.db.query(sql + " ORDER BY m.trial_id", params)]

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
            self.db["query_watches"].upsert({"name": name, "params": params, **values}, pk="name")
            if "members" not in values:
                self.conn.execute(
                    "UPDATE query_watches SET members = (SELECT count(*) FROM query_members"
                    " WHERE query = ? AND state = 'member') WHERE name = ?",
                    (name, name),
                )

        self._write(upsert)

