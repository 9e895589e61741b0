"""Where reports and alerts have got to: the report cursor, alert channels and their deliveries.

Every cursor only moves forward: two reports or deliveries at once can each
move it, but never back over what the other has done (compare-and-set in SQL).
"""

from __future__ import annotations

from typing import Any, Iterable

from pipeline.clock import utcnow
from pipeline.codec import decode_change
from pipeline.store.base import StoreBase


class DeliveryMixin(StoreBase):
    def max_ids(self) -> tuple[int, int]:
        """The highest change id and failure event id now stored (0 when none)."""
        (change,) = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM changes").fetchone()
        (failure,) = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM failure_events").fetchone()
        return int(change), int(failure)

    def report_cursor(self) -> tuple[int, int]:
        """(change id, failure event id) reported up to by ``report --since last``."""
        change = self.get_meta("report_cursor_change")
        failure = self.get_meta("report_cursor_failure")
        return int(change or 0), int(failure or 0)

    def set_report_cursor(self, change_id: int, failure_id: int) -> None:
        """Move the report cursor forward to these ids (never back: a slower report loses)."""

        def update() -> None:
            self._advance_meta("report_cursor_change", change_id)
            self._advance_meta("report_cursor_failure", failure_id)

        self._write(update)

    # -- alert channels -------------------------------------------------------------------

    def ensure_channel(self, name: str, channel: str) -> dict[str, Any]:
        """The channel's row, created on first sight with its cursors at "now".

        A channel added to an installation with years of history starts with what
        happens from now on, not with a flood of old changes.
        """

        def ensure() -> None:
            change, failure = self.max_ids()
            row = {"name": name, "channel": channel, "change_cursor": change, "failure_cursor": failure,
                   "created_at": utcnow()}
            self.db["channels"].insert(row, ignore=True)

        self._write(ensure)
        return self.channel(name)  # type: ignore[return-value]

    def channel(self, name: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM channels WHERE name = ?", [name]))
        return dict(rows[0]) if rows else None

    def channels(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.query("SELECT * FROM channels ORDER BY name")]

    def undelivered(self, name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, int]:
        """What the channel has not been sent yet, before its rule filters it.

        Returns (changes, failure events, change id upto, failure id upto): every
        non-backfilled change and every failure event past the channel's cursors, up to
        the ids stored when this was read.  Backfilled changes are history, never alerts;
        "detail" rows (the registry's wording moving with its normalized field) would
        say the same thing twice.
        """
        row = self.channel(name)
        if row is None:
            raise KeyError(name)
        upto_change, upto_failure = self.max_ids()
        changes = [
            decode_change(dict(r))
            for r in self.db.query(
                "SELECT * FROM changes c WHERE c.id > ? AND c.id <= ? AND c.backfilled = 0 AND c.kind != 'detail'"
                " AND NOT EXISTS"
                " (SELECT 1 FROM deliveries d WHERE d.channel = ? AND d.item = 'change' AND d.item_id = c.id)"
                " ORDER BY c.id",
                [row["change_cursor"], upto_change, name],
            )
        ]
        failures = [
            dict(r)
            for r in self.db.query(
                "SELECT * FROM failure_events f WHERE f.id > ? AND f.id <= ? AND NOT EXISTS"
                " (SELECT 1 FROM deliveries d WHERE d.channel = ? AND d.item = 'failure' AND d.item_id = f.id)"
                " ORDER BY f.id",
                [row["failure_cursor"], upto_failure, name],
            )
        ]
        return changes, failures, max(upto_change, row["change_cursor"]), max(upto_failure, row["failure_cursor"])

    def record_delivery(
        self,
        name: str,
        change_ids: Iterable[int],
        failure_ids: Iterable[int],
        upto_change: int,
        upto_failure: int,
    ) -> None:
        """After a successful send: note what went out and move the channel's cursors, at once."""
        now = utcnow()

        def record() -> None:
            rows = [(name, "change", i, now) for i in change_ids] + [(name, "failure", i, now) for i in failure_ids]
            self.conn.executemany(
                "INSERT OR IGNORE INTO deliveries (channel, item, item_id, delivered_at) VALUES (?, ?, ?, ?)", rows
            )
            self.conn.execute(
                "UPDATE channels SET change_cursor = MAX(change_cursor, ?), failure_cursor = MAX(failure_cursor, ?),"
                " last_attempt = ?, last_success = ?, last_error = NULL, failing_since = NULL WHERE name = ?",
                (upto_change, upto_failure, now, now, name),
            )

        self._write(record)

    def advance_channel(self, name: str, upto_change: int, upto_failure: int) -> None:
        """Nothing past the cursors was wanted by the channel's rule: skip over it."""
        self._write(
            self.conn.execute,
            "UPDATE channels SET change_cursor = MAX(change_cursor, ?), failure_cursor = MAX(failure_cursor, ?)"
            " WHERE name = ?",
            (upto_change, upto_failure, name),
        )

    def record_delivery_failure(self, name: str, error: str) -> None:
        """A send failed: keep the cursors (the backlog waits for the next run), note why."""
        now = utcnow()
        self._write(
            self.conn.execute,
            "UPDATE channels SET last_attempt = ?, last_error = ?, failing_since = COALESCE(failing_since, ?)"
            " WHERE name = ?",
            (now, error, now, name),
        )

