"""One trial across registries: its open discrepancies and integrity flags.

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
from pipeline.store.base import StoreBase, in_chunks
from pipeline.store.trials import insert_changes

Member = tuple[str, str]


class FlagsMixin(StoreBase):
    def save_trial_events(
        self,
        current: dict[tuple[str, str, str], dict[str, Any]],
        judged: set[str],
        run_id: int | None,
        now: str,
        baseline: set[str] = frozenset(),  # type: ignore[assignment]
        undecided: set[tuple[str, str, str]] = frozenset(),  # type: ignore[assignment]
        keys: Iterable[str] | None = None,
    ) -> dict[str, int]:
        """Bring ``trial_flags`` to ``current`` and log what was raised and cleared (one transaction).

        ``current``: (kind, subject, copies) -> {"trial_key", "detail"} of every discrepancy and flag that holds now among the ``judged`` copies
        ("source:trial_id").  An open row not in ``current`` is cleared only when all its
        copies were judged (a copy that went missing or was not looked at keeps its flags).
        An open row still holding gets its detail and trial key refreshed, with no event.
        One whose copies are all in ``baseline`` (seen for the first time) is opened
        without an event: a first sighting is a state, not a change.  An open row in
        ``undecided`` (a disagreement whose copies were not all checked since it moved) is
        left as it is.  ``keys``: the trials judged and any whose records moved (the
        open rows of the others are not read; None: every trial was judged).
        """

        def write() -> dict[str, int]:
            counts = {"raised": 0, "cleared": 0, "baseline": 0}
            opened: list[tuple[Any, ...]] = []
            sql = "SELECT id, trial_key, kind, subject, copies, detail FROM trial_flags WHERE cleared_at IS NULL"
            open_rows: dict[tuple[str, str, str], tuple[int, str, str]] = {}
            chunks = [((), "")] if keys is None else [
                (chunk, f" AND trial_key IN ({marks})") for chunk, marks in in_chunks(sorted(set(keys)))]
            for chunk, where in chunks:
                for fid, key, kind, subject, copies, detail in self.conn.execute(sql + where, chunk):
                    open_rows[(kind, subject, copies)] = (fid, key, detail)
            for ident, item in current.items():
                kind, subject, copies = ident
                detail_json = dumps(item["detail"])
                if ident not in open_rows and keys is not None:
                    # open under a trial key not asked for (cannot happen: a key that moved is asked for)
                    row = self.conn.execute(
                        "SELECT id, trial_key, detail FROM trial_flags WHERE cleared_at IS NULL AND kind = ?"
                        " AND subject = ? AND copies = ?", ident).fetchone()
                    if row is not None:
                        open_rows[ident] = tuple(row)  # type: ignore[assignment]
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
                opened.append((item["trial_key"], kind, subject, copies, detail_json, now, change_id))
            self.conn.executemany(
                "INSERT INTO trial_flags (trial_key, kind, subject, copies, detail, raised_at, raised_change)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                opened,
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
