"""One trial across registries: which records are linked, and the versions the trial rules read.

``trial_links``  (trial_id, source) -> trial_key, replaced whole by :meth:`save_trial_links`
               (only the rows that moved are written), with the snapshot and the
               secondary IDs each record was linked by (a pass relinks only when
               a record came, went or changed its IDs).
``trial_link_keys``  the keys each linked record can be matched by (its own ID's and those
               of the secondary IDs it was linked by), kept with its ``trial_links`` row:
               records added later look up the records they link to here.
Discrepancies and flags are :mod:`pipeline.store.flags`.
"""

from __future__ import annotations

from typing import Any, Iterable, NamedTuple

from pipeline.codec import loads
from pipeline.linking import link_key_rows
from pipeline.store.base import StoreBase, in_chunks

Member = tuple[str, str]


class LinkRow(NamedTuple):
    """A record with a current snapshot, and how the last trial pass linked it."""

    state: str
    snapshot_id: int
    linked_snapshot: int | None   # the current snapshot when it was linked (None: never, or before v9)
    link_ids: str | None          # the secondary IDs it was linked by (JSON)
    trial_key: str | None         # its trial (None: never linked)


class LinksMixin(StoreBase):
    # -- reading the records -------------------------------------------------------------

    _LINK_SQL = (
        "SELECT t.trial_id, t.source, t.state, t.snapshot_id, l.snapshot_id, l.link_ids, l.trial_key"
        " FROM trials t LEFT JOIN trial_links l ON l.trial_id = t.trial_id AND l.source = t.source"
        " WHERE t.snapshot_id IS NOT NULL"
    )

    def link_state(self, *, touched_only: bool = False) -> tuple[dict[Member, LinkRow], list[Member]]:
        """Every record with a current snapshot and how it was last linked (with
        ``touched_only``, just those never linked or linked by another snapshot than
        their current one); and the linked records that no longer have a current
        snapshot (their link rows are stale)."""
        sql = self._LINK_SQL
        if touched_only:
            sql += " AND (l.trial_key IS NULL OR l.snapshot_id IS NOT t.snapshot_id)"
        rows = {(r[0], r[1]): LinkRow(*r[2:]) for r in self.conn.execute(sql)}
        gone = [
            (t, s)
            for t, s in self.conn.execute(
                "SELECT l.trial_id, l.source FROM trial_links l LEFT JOIN trials t"
                " ON t.trial_id = l.trial_id AND t.source = l.source WHERE t.snapshot_id IS NULL"
            )
        ]
        return rows, gone

    def link_key_hits(self, keys: Iterable[str]) -> tuple[list[tuple[str, Member, bool]], dict[Member, str]]:
        """The linked records that have any of ``keys``: ((key, record, whether it is a key of
        its secondary IDs) for each, as :func:`pipeline.linking.key_hits` gives them; each
        record's trial key)."""
        hits: list[tuple[str, Member, bool]] = []
        key_of: dict[Member, str] = {}
        for chunk, marks in in_chunks(sorted(set(keys))):
            for key, t, s, secondary, trial_key in self.conn.execute(
                "SELECT k.key, k.trial_id, k.source, k.secondary, l.trial_key FROM trial_link_keys k"
                " JOIN trial_links l ON l.trial_id = k.trial_id AND l.source = k.source"
                f" WHERE k.key IN ({marks})", chunk,
            ):
                hits.append((key, (t, s), bool(secondary)))
                key_of[(t, s)] = trial_key
        return hits, key_of

    def has_links(self) -> bool:
        return self.conn.execute("SELECT 1 FROM trial_links LIMIT 1").fetchone() is not None

    def linkable_count(self) -> int:
        """How many records have a current snapshot."""
        return int(self.conn.execute("SELECT count(*) FROM trials WHERE snapshot_id IS NOT NULL").fetchone()[0])

    def touch_trial_links(self, linked: dict[Member, tuple[int, str]]) -> None:
        """Record that these records, keys unchanged, were linked by (snapshot id, secondary IDs)."""
        self._write(lambda: self.conn.executemany(
            "UPDATE trial_links SET snapshot_id = ?, link_ids = ? WHERE trial_id = ? AND source = ?",
            [(sid, ids, t, s) for (t, s), (sid, ids) in linked.items()],
        ))

    def trial_groups(self, keys: Iterable[str] | None = None) -> dict[str, list[tuple[Member, str]]]:
        """trial key -> its records (by ID, then source) with their states; every trial
        when ``keys`` is None."""
        sql = ("SELECT l.trial_key, l.trial_id, l.source, t.state FROM trial_links l"
               " JOIN trials t ON t.trial_id = l.trial_id AND t.source = l.source")
        chunks = [((), "")] if keys is None else [
            (chunk, f" WHERE l.trial_key IN ({marks})") for chunk, marks in in_chunks(sorted(set(keys)))]
        out: dict[str, list[tuple[Member, str]]] = {}
        for chunk, where in chunks:
            for key, trial_id, source, state in self.conn.execute(
                sql + where + " ORDER BY l.trial_key, l.trial_id, l.source", chunk
            ):
                out.setdefault(key, []).append(((trial_id, source), state))
        return out

    def trial_keys_of(self, members: Iterable[Member]) -> dict[Member, str]:
        """(trial_id, source) -> trial key, for those of ``members`` that are linked."""
        wanted = set(members)
        out: dict[Member, str] = {}
        for chunk, marks in in_chunks(sorted({t for t, _ in wanted})):
            for t, s, k in self.conn.execute(
                f"SELECT trial_id, source, trial_key FROM trial_links WHERE trial_id IN ({marks})", chunk,
            ):
                if (t, s) in wanted:
                    out[(t, s)] = k
        return out

    def secondary_ids_of(self, snapshot_ids: Iterable[int]) -> dict[int, str]:
        """snapshot id -> its record's secondary IDs as JSON text ("[]" when it has none)."""
        out: dict[int, str] = {}
        for chunk, marks in in_chunks(sorted(set(snapshot_ids))):
            out.update(self.conn.execute(
                f"SELECT snapshot_id, secondary_ids FROM snapshot_facts WHERE snapshot_id IN ({marks})", chunk
            ).fetchall())
            missing = [sid for sid in chunk if sid not in out]  # stored before v9: read from the record
            if missing:
                out.update(self.conn.execute(
                    "SELECT id, coalesce(json_extract(record, '$.secondary_ids'), '[]') FROM snapshots"
                    f" WHERE id IN ({','.join('?' * len(missing))})", missing,
                ).fetchall())
        return out

    def copy_versions(self, members: Iterable[Member]) -> dict[Member, list[dict[str, Any]]]:
        """Each member's snapshots, oldest first by id, the current one marked; ``record`` is
        the snapshot's facts (:mod:`pipeline.trial_facts`; the whole record for a snapshot
        stored before v9).  Each also carries the run that last checked the trial
        (``checked_run``) and its current snapshot's ``raw_format``.

        Read from ``snapshot_facts``: a snapshot's own columns after its record and raw
        payload would cost reading the whole row (see the schema)."""
        wanted = list(dict.fromkeys(members))
        out: dict[Member, list[dict[str, Any]]] = {m: [] for m in wanted}
        current: dict[Member, tuple[Any, Any]] = {}
        for chunk, marks in in_chunks(sorted({t for t, _ in wanted})):
            rows = self.conn.execute(
                "SELECT s.trial_id, s.source, s.id, s.content_hash, coalesce(f.facts, s.record),"
                " coalesce(f.fetched_at, s.fetched_at),"
                " CASE WHEN f.snapshot_id IS NOT NULL THEN f.registry_date ELSE s.registry_date END,"
                " coalesce(f.backfilled, s.backfilled),"
                " CASE WHEN f.snapshot_id IS NOT NULL THEN f.run_id ELSE s.run_id END,"
                " t.snapshot_id = s.id, t.checked_run,"
                " CASE WHEN t.snapshot_id != s.id THEN NULL WHEN f.snapshot_id IS NOT NULL THEN f.raw_format"
                " ELSE s.raw_format END"
                " FROM snapshots s JOIN trials t ON t.trial_id = s.trial_id AND t.source = s.source"
                " LEFT JOIN snapshot_facts f ON f.snapshot_id = s.id"
                f" WHERE s.trial_id IN ({marks}) ORDER BY s.id",
                chunk,
            )
            for trial_id, source, sid, chash, facts, fetched, rdate, backfilled, run_id, is_current, checked, fmt in rows:
                versions = out.get((trial_id, source))
                if versions is None:
                    continue  # the other registry's record of the same ID, not asked for
                if is_current:
                    current[(trial_id, source)] = (checked, fmt)
                versions.append({"id": sid, "content_hash": chash, "record": loads(facts), "fetched_at": fetched,
                                 "registry_date": rdate, "backfilled": bool(backfilled), "current": bool(is_current),
                                 "run_id": run_id})
        for member, versions in out.items():
            checked, fmt = current.get(member, (None, None))
            for v in versions:
                v["checked_run"], v["current_format"] = checked, fmt
        return out

    def max_snapshot_id(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM snapshots").fetchone()[0])

    def snapshot_members_since(self, snapshot_id: int) -> set[Member]:
        """The (trial_id, source) of every snapshot written after ``snapshot_id``."""
        return {
            (t, s)
            for t, s in self.conn.execute(
                "SELECT DISTINCT trial_id, source FROM snapshots WHERE id > ?", (snapshot_id,)
            )
        }

    # -- links ----------------------------------------------------------------------------------

    def save_trial_links(self, keys: dict[Member, str], linked: dict[Member, tuple[int, str]] | None = None,
                         gone: Iterable[Member] = (), *, partial: bool = False) -> set[str]:
        """Make ``trial_links`` say ``keys``, each row with the (snapshot id, secondary IDs)
        it was linked by (``linked``; a row without keeps what it had, a new one is
        unknown: the next pass links it again); drop the ``gone`` records' rows and,
        unless ``partial`` (``keys`` then covers only some records), any not in ``keys``.
        Only rows that moved are written.  Returns the trial keys whose membership moved."""
        linked = linked or {}
        gone = set(gone)

        def write() -> set[str]:
            sql = "SELECT trial_id, source, trial_key, snapshot_id, link_ids FROM trial_links"
            if partial:
                rows = [r for chunk, marks in in_chunks(sorted({t for t, _ in keys} | {t for t, _ in gone}))
                        for r in self.conn.execute(f"{sql} WHERE trial_id IN ({marks})", chunk)]
            else:
                rows = self.conn.execute(sql).fetchall()
            old = {(t, s): (k, sid, ids) for t, s, k, sid, ids in rows}
            moved: set[str] = set()
            gone_rows = [m for m in old if m in gone or (not partial and m not in keys)]
            for m in gone_rows:
                moved.add(old[m][0])
            self.conn.executemany("DELETE FROM trial_links WHERE trial_id = ? AND source = ?", gone_rows)
            rows = []
            rekeyed: list[Member] = gone_rows[:]  # whose trial_link_keys rows are rewritten
            for m, k in keys.items():
                was = old.get(m)
                sid, ids = linked.get(m) or (was[1:] if was is not None else (None, None))
                if was is None or was[0] != k:
                    moved.add(k)
                    if was is not None:
                        moved.add(was[0])
                if was != (k, sid, ids):
                    rows.append((m[0], m[1], k, sid, ids))
                if was is None or was[2] != ids:
                    rekeyed.append(m)
            self.conn.executemany("DELETE FROM trial_link_keys WHERE trial_id = ? AND source = ?", rekeyed)
            rekeyed_set = set(rekeyed)
            self.conn.executemany(
                "INSERT OR IGNORE INTO trial_link_keys (key, trial_id, source, secondary) VALUES (?, ?, ?, ?)",
                [row for t, s, _k, _sid, ids in rows if (t, s) in rekeyed_set for row in link_key_rows(t, s, ids)],
            )
            self.conn.executemany(
                "INSERT INTO trial_links (trial_id, source, trial_key, snapshot_id, link_ids) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(trial_id, source) DO UPDATE SET trial_key = excluded.trial_key,"
                " snapshot_id = excluded.snapshot_id, link_ids = excluded.link_ids",
                rows,
            )
            return moved

        return self._write(write)

    def trial_key_map(self) -> dict[Member, str]:
        """(trial_id, source) -> trial key, for every linked record."""
        return {(t, s): k for t, s, k in self.conn.execute("SELECT trial_id, source, trial_key FROM trial_links")}

    def trial_members(self, trial_key: str) -> list[Member]:
        """The (trial_id, source) of the records of one trial, by ID then source."""
        return [
            (t, s)
            for t, s in self.conn.execute(
                "SELECT trial_id, source FROM trial_links WHERE trial_key = ? ORDER BY trial_id, source", (trial_key,)
            )
        ]

    def trial_key_of(self, trial_id: str) -> str | None:
        """The trial key of any member ID (or of a trial key itself); None if not linked."""
        row = self.conn.execute(
            "SELECT trial_key FROM trial_links WHERE trial_id = ? OR trial_key = ? LIMIT 1", (trial_id, trial_id)
        ).fetchone()
        return row[0] if row else None
