"""Failure alerts: a trial failing run after run raises one event per streak, and one when it recovers."""

from __future__ import annotations

from typing import Any

from pipeline.clock import utcnow
from pipeline.store.base import StoreBase


class FailuresMixin(StoreBase):
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
