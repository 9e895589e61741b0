"""History backfill: a trial's earlier registry versions, stored beside the live snapshots."""

from __future__ import annotations

from typing import Any

from pipeline.clock import utcnow
from pipeline.codec import loads
from pipeline.store.base import StoreBase
from pipeline.store.trials import insert_changes, insert_snapshot, present_values, upsert_trial


class BackfillMixin(StoreBase):
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
        snapshot is not touched (see :meth:`finish_backfill`).  Returns the snapshot id,
        or None when that version was stored before (idempotent).
        """

        def insert() -> int | None:
            snapshot_id = insert_snapshot(
                self.conn, trial_id, source, content_hash=content_hash, record=record, raw=raw,
                raw_format=raw_format, parser_version=parser_version, fetched_at=utcnow(),
                registry_date=registry_date, registry_version=registry_version, backfilled=True,
                run_id=run_id, or_ignore=True,
            )
            if snapshot_id is None:
                return None
            insert_changes(self.conn, trial_id, source, snapshot_id, run_id, changes, detected_at, True,
                           registry_date)
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
                upsert_trial(self.conn, trial_id, source, present_values(record, row[0], row[1], utcnow()))
                adopted = True
            self.db["backfills"].upsert(
                {"trial_id": trial_id, "source": source, "versions": versions, "done_at": utcnow()},
                pk=("trial_id", "source"),
            )
            return adopted

        return self._write(update)

    def backfilled_trials(self, source: str = "ctgov") -> set[str]:
        """Trials whose history was backfilled."""
        return {r[0] for r in self.conn.execute("SELECT trial_id FROM backfills WHERE source = ?", (source,))}

