"""Query watches (the mirror of a ClinicalTrials.gov search) and which trials match each."""

from __future__ import annotations

from typing import Any, Iterable

from pipeline.clock import utcnow
from pipeline.plan import Update
from pipeline.store.trials import TrialsMixin


class QueriesMixin(TrialsMixin):
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
            self.db["query_watches"].upsert({"name": name, "params": params, **values}, pk="name")
            if "members" not in values:
                self.conn.execute(
                    "UPDATE query_watches SET members = (SELECT count(*) FROM query_members"
                    " WHERE query = ? AND state = 'member') WHERE name = ?",
                    (name, name),
                )

        self._write(upsert)

