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

    def start_run_sources(self, run_id: int, sources: Iterable[str]) -> None:
        """Mark ``run_id`` as a refresh of ``sources`` (their counts come with :meth:`finish_run_source`)."""
        rows = [(run_id, s) for s in sources]
        self._write(lambda: self.conn.executemany(
            "INSERT OR IGNORE INTO run_sources (run_id, source, fetched, new, unchanged, changed, missing, failed,"
            " requests) VALUES (?, ?, 0, 0, 0, 0, 0, 0, 0)", rows))

    def finish_run_source(self, run_id: int, source: str, counts: dict[str, int], note: str | None = None) -> None:
        """Record one source's own counts in a refresh run."""
        values = [int(counts.get(c, 0)) for c in _COUNTS]
        self._write(lambda: self.conn.execute(
            f"INSERT OR REPLACE INTO run_sources (run_id, source, {', '.join(_COUNTS)}, note)"
            f" VALUES (?, ?, {', '.join('?' for _ in _COUNTS)}, ?)", [run_id, source, *values, note]))

    def last_run(self, source: str) -> dict[str, Any] | None:
        """The most recent refresh run of ``source``, with that source's own counts (None when
        it never ran).  A backfill or an import run is never a source's last run."""
        cols = ", ".join(f"rs.{c} AS {c}" for c in _COUNTS)
        row = self.conn.execute(
            f"SELECT r.id, r.started_at, r.finished_at, r.sources, r.trigger, r.status, r.pid,"
            f" rs.note AS note, {cols} FROM run_sources rs JOIN runs r ON r.id = rs.run_id"
            " WHERE rs.source = ? ORDER BY rs.run_id DESC LIMIT 1",
            (source,),
        ).fetchone()
        if row is None:
            return None
        keys = ["id", "started_at", "finished_at", "sources", "trigger", "status", "pid", "note", *_COUNTS]
        return dict(zip(keys, row))

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
