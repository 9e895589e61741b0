"""One trial across registries: which records are linked, and the open discrepancies and flags.

``trial_links``  (trial_id, source) -> trial_key, replaced whole by :meth:`save_trial_links`
               (only the rows that moved are written).
``trial_flags``  every discrepancy and integrity flag ever raised; ``cleared_at`` is NULL
               while it is open.  Raising or clearing one writes a ``changes`` row
               (``kind`` ``discrepancy`` or ``flag``, ``field`` = the compared field or the
               flag kind) in the same transaction, so reports and alert channels carry it
               like any change, and nothing is raised twice (a partial unique index over
               the open rows).
"""

from __future__ import annotations

from typing import Any, Iterable

from pipeline.codec import dumps, loads
from pipeline.store.base import StoreBase
from pipeline.store.trials import insert_changes

Member = tuple[str, str]


class LinksMixin(StoreBase):
    # -- reading the records -------------------------------------------------------------

    def linkable_records(self) -> dict[Member, tuple[str, list[str]]]:
        """(trial_id, source) -> (state, secondary IDs) of every trial with a current snapshot."""
        out: dict[Member, tuple[str, list[str]]] = {}
        rows = self.conn.execute(
            "SELECT t.trial_id, t.source, t.state, json_extract(s.record, '$.secondary_ids')"
            " FROM trials t JOIN snapshots s ON s.id = t.snapshot_id"
        )
        for trial_id, source, state, secondary in rows:
            out[(trial_id, source)] = (state, loads(secondary) or [])
        return out

    def copy_versions(self, members: Iterable[Member]) -> dict[Member, list[dict[str, Any]]]:
        """Each member's snapshots (record decoded), oldest first by id, the current one marked;
        each also carries the run that last checked the trial (``checked_run``) and its current
        snapshot's ``raw_format``."""
        out: dict[Member, list[dict[str, Any]]] = {}
        for trial_id, source in members:
            current = self.conn.execute(
                "SELECT t.snapshot_id, t.checked_run, s.raw_format FROM trials t"
                " LEFT JOIN snapshots s ON s.id = t.snapshot_id WHERE t.trial_id = ? AND t.source = ?",
                (trial_id, source),
            ).fetchone()
            rows = self.conn.execute(
                "SELECT id, content_hash, record, fetched_at, registry_date, registry_version, backfilled, run_id"
                " FROM snapshots WHERE trial_id = ? AND source = ? ORDER BY id",
                (trial_id, source),
            ).fetchall()
            out[(trial_id, source)] = [
                {"id": r[0], "content_hash": r[1], "record": loads(r[2]), "fetched_at": r[3], "registry_date": r[4],
                 "registry_version": r[5], "backfilled": bool(r[6]), "current": current is not None and r[0] == current[0],
                 "run_id": r[7], "checked_run": current[1] if current else None,
                 "current_format": current[2] if current else None}
                for r in rows
            ]
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

    def save_trial_links(self, keys: dict[Member, str]) -> set[str]:
        """Make ``trial_links`` say ``keys``; returns the trial keys whose membership moved."""

        def write() -> set[str]:
            old = {(t, s): k for t, s, k in self.conn.execute("SELECT trial_id, source, trial_key FROM trial_links")}
            moved: set[str] = set()
            gone = [m for m in old if m not in keys]
            for m in gone:
                moved.add(old[m])
            self.conn.executemany("DELETE FROM trial_links WHERE trial_id = ? AND source = ?", gone)
            changed = [(m[0], m[1], k) for m, k in keys.items() if old.get(m) != k]
            for t, s, k in changed:
                moved.add(k)
                if (t, s) in old:
                    moved.add(old[(t, s)])
            self.conn.executemany(
                "INSERT INTO trial_links (trial_id, source, trial_key) VALUES (?, ?, ?)"
                " ON CONFLICT(trial_id, source) DO UPDATE SET trial_key = excluded.trial_key",
                changed,
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

    # -- discrepancies and flags ---------------------------------------------------------------

    def save_trial_events(
        self,
        current: dict[tuple[str, str, str], dict[str, Any]],
        judged: set[str],
        run_id: int | None,
        now: str,
        baseline: set[str] = frozenset(),  # type: ignore[assignment]
        undecided: set[tuple[str, str, str]] = frozenset(),  # type: ignore[assignment]
    ) -> dict[str, int]:
        """Bring ``trial_flags`` to ``current`` and log what was raised and cleared (one transaction).

        ``current``: (kind, subject, copies) -> {"trial_key", "detail"} of every discrepancy and flag that holds now among the ``judged`` copies
        ("source:trial_id").  An open row not in ``current`` is cleared only when all its
        copies were judged (a copy that went missing or was not looked at keeps its flags).
        An open row still holding gets its detail and trial key refreshed, with no event.
        One whose copies are all in ``baseline`` (seen for the first time) is opened
        without an event: a first sighting is a state, not a change.  An open row in
        ``undecided`` (a disagreement whose copies were not all checked since it moved) is
        left as it is.
        """

        def write() -> dict[str, int]:
            counts = {"raised": 0, "cleared": 0, "baseline": 0}
            open_rows = {
                (kind, subject, copies): (fid, key, detail)
                for fid, key, kind, subject, copies, detail in self.conn.execute(
                    "SELECT id, trial_key, kind, subject, copies, detail FROM trial_flags WHERE cleared_at IS NULL"
                )
            }
            for ident, item in current.items():
                kind, subject, copies = ident
                detail_json = dumps(item["detail"])
                if ident in open_rows:
                    fid, key, old_detail = open_rows[ident]
                    if key != item["trial_key"] or old_detail != detail_json:
                        self.conn.execute("UPDATE trial_flags SET trial_key = ?, detail = ? WHERE id = ?",
                                          (item["trial_key"], detail_json, fid))
                    continue
                change_id = None
                if set(copies.split()) <= baseline:
                    counts["baseline"] += 1
                else:
                    change_id = self._log_event(copies, item["detail"].get("significance", "other"), kind, subject,
                                                None, item["detail"], run_id, now)
                    counts["raised"] += 1
                self.conn.execute(
                    "INSERT INTO trial_flags (trial_key, kind, subject, copies, detail, raised_at, raised_change)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (item["trial_key"], kind, subject, copies, detail_json, now, change_id),
                )
            for ident, (fid, key, old_detail) in open_rows.items():
                if ident in current or ident in undecided or not set(ident[2].split()) <= judged:
                    continue
                kind, subject, copies = ident
                old = loads(old_detail)
                change_id = self._log_event(copies, old.get("significance", "other"), kind, subject, old, None,
                                            run_id, now)
                self.conn.execute("UPDATE trial_flags SET cleared_at = ?, cleared_change = ? WHERE id = ?",
                                  (now, change_id, fid))
                counts["cleared"] += 1
            return counts

        return self._write(write)

    def _log_event(self, copies: str, significance: str, kind: str, subject: str, old: Any, new: Any,
                   run_id: int | None, now: str) -> int:
        """One ``changes`` row, filed under the first record of ``copies`` (a record of the trial)."""
        source, trial_id = copies.split()[0].split(":", 1)
        insert_changes(self.conn, trial_id, source, None, run_id,
                       [{"field": subject, "old": old, "new": new, "significance": significance,
                         "kind": kind}], now, False)
        return int(self.conn.execute("SELECT last_insert_rowid()").fetchone()[0])

    def trial_flags(
        self, *, kind: str | None = None, subject: str | None = None, trial_key: str | None = None,
        open_only: bool = True,
    ) -> list[dict[str, Any]]:
        """Discrepancies and flags (open ones unless ``open_only=False``), newest first."""
        sql = "SELECT * FROM trial_flags WHERE 1=1"
        params: list[Any] = []
        if open_only:
            sql += " AND cleared_at IS NULL"
        for column, value in (("kind", kind), ("subject", subject), ("trial_key", trial_key)):
            if value:
                sql += f" AND {column} = ?"
                params.append(value)
        sql += " ORDER BY id DESC"
        out = []
        for row in self.db.query(sql, params):
            row = dict(row)
            row["detail"] = loads(row["detail"])
            out.append(row)
        return out

    def trial_changes(self, members: Iterable[Member]) -> list[dict[str, Any]]:
        """Every change of the trial's records and its discrepancy / flag events, newest first."""
        out: list[dict[str, Any]] = []
        seen: set[int] = set()
        for trial_id, source in members:
            for change in self.changes(trial_id=trial_id, source=source):
                if change["id"] not in seen:
                    seen.add(change["id"])
                    out.append(change)
        out.sort(key=lambda c: (c["detected_at"], c["id"]), reverse=True)
        return out
