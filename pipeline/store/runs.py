"""Runs (one row per refresh, import or backfill) and the fetch log (one row per request)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Iterable

from pipeline.clock import utcnow
from pipeline.store.base import StoreBase

_COUNTS = ("fetched", "new", "unchanged", "changed", "missing", "failed", "requests")


class RunsMixin(StoreBase):
    def start_run(self, sources: Iterable[str], trigger: str, pid: int | None = None) -> int:
        def insert() -> int:
            row = {"started_at": utcnow(), "sources": ",".join(sources), "trigger": trigger,
                   "status": "running", "pid": pid}
            return int(self.db["runs"].insert(row).last_pk)

        return self._write(insert)

    def finish_run(
        self,
        run_id: int,
        counts: dict[str, int],
        status: str = "finished",
        note: str | None = None,
        *,
        fetch_log_days: int | None = None,
    ) -> None:
        """Record how a run ended; with ``fetch_log_days``, prune older fetch log rows too."""
        values = {c: int(counts.get(c, 0)) for c in _COUNTS}

        def update() -> None:
            self.db["runs"].update(run_id, {"finished_at": utcnow(), "status": status, "note": note, **values})
            if fetch_log_days is not None:
                self._delete_fetch_log_before(fetch_log_days)

        self._write(update)

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

    def last_run(self, source: str) -> dict[str, Any] | None:
        """The most recent run that covered ``source`` (None when it never ran)."""
        rows = self.runs(limit=1, source=source)
        return rows[0] if rows else None

    # -- fetch log ----------------------------------------------------------------------

    def log_fetches(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        now = utcnow()
        records = [
            {
                "run_id": r.get("run_id"),
                "source": r["source"],
                "trial_id": r.get("trial_id"),
                "url": r["url"],
                "status": r.get("status"),
                "attempts": r.get("attempts", 1),
                "elapsed_ms": r.get("elapsed_ms"),
                "error": r.get("error"),
                "fetched_at": r.get("fetched_at") or now,
            }
            for r in rows
        ]
        self._write(lambda: self.db["fetch_log"].insert_all(records, batch_size=500))

    def prune_fetch_log(self, older_than_days: int) -> int:
        """Delete fetch log rows older than ``older_than_days`` (returns how many)."""
        return self._write(self._delete_fetch_log_before, older_than_days)

    def _delete_fetch_log_before(self, days: int) -> int:
        cutoff = datetime.fromtimestamp(time.time() - days * 86400, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return self.conn.execute("DELETE FROM fetch_log WHERE fetched_at < ?", (cutoff,)).rowcount
