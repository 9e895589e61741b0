"""The database invariants every fault and crash test asserts (a helper, not a test module).

After any fault (a SIGKILL mid-run, a full disk, a locked file) the database must:

* pass ``PRAGMA integrity_check``;
* hold no change without its snapshot: every ``changes.snapshot_id`` names a snapshot
  of the same trial and source, and every field change has one;
* hold no snapshot without its changes: every snapshot of a trial after its first has
  at least one change, unless it is a parser-version re-read or a backfilled version;
* never hold two consecutive snapshots of a trial with the same content hash;
* point ``trials.snapshot_id`` at the trial's latest snapshot (and carry its hash).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def check_invariants(path: str | Path) -> dict[str, int]:
    """Assert the invariants on the database at ``path``; return row counts."""
    conn = sqlite3.connect(str(path), timeout=30)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

        orphans = conn.execute(
            "SELECT c.id, c.trial_id, c.snapshot_id FROM changes c LEFT JOIN snapshots s ON s.id = c.snapshot_id"
            " WHERE c.snapshot_id IS NOT NULL AND (s.id IS NULL OR s.trial_id != c.trial_id OR s.source != c.source)"
        ).fetchall()
        assert not orphans, f"changes pointing at no snapshot (or another trial's): {orphans[:5]}"
        loose = conn.execute("SELECT id, trial_id FROM changes WHERE kind IN ('field', 'detail') AND snapshot_id IS NULL").fetchall()
        assert not loose, f"field changes without a snapshot: {loose[:5]}"

        snaps = conn.execute(
            "SELECT id, trial_id, source, content_hash, parser_version, backfilled FROM snapshots"
            " ORDER BY trial_id, source, id"
        ).fetchall()
        with_changes = {r[0] for r in conn.execute("SELECT DISTINCT snapshot_id FROM changes WHERE snapshot_id IS NOT NULL")}
        previous = None
        for sid, trial, source, chash, parser_version, backfilled in snaps:
            if previous is not None and previous[1:3] == (trial, source):
                assert chash != previous[3], f"snapshot {sid} of {trial}/{source} repeats the previous content hash"
                reread = parser_version != previous[4]
                assert sid in with_changes or reread or backfilled, (
                    f"snapshot {sid} of {trial}/{source} has no changes (and is no parser re-read)"
                )
            previous = (sid, trial, source, chash, parser_version)

        latest = {
            (t, s): (sid, h)
            for t, s, sid, h in conn.execute(
                "SELECT trial_id, source, id, content_hash FROM snapshots WHERE id IN"
                " (SELECT MAX(id) FROM snapshots GROUP BY trial_id, source)"
            )
        }
        for trial, source, state, sid, chash in conn.execute(
            "SELECT trial_id, source, state, snapshot_id, content_hash FROM trials"
        ):
            if (trial, source) in latest:
                assert (sid, chash) == latest[(trial, source)], (
                    f"trials row of {trial}/{source} points at snapshot {sid}, latest is {latest[(trial, source)]}"
                )
            else:
                assert sid is None, f"trials row of {trial}/{source} points at a snapshot that does not exist"
            if state == "present":
                assert sid is not None, f"{trial}/{source} is present without a snapshot"
        for key in latest:
            assert conn.execute(
                "SELECT 1 FROM trials WHERE trial_id = ? AND source = ?", key
            ).fetchone(), f"snapshots of {key} but no trials row"

        counts = {
            table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("trials", "snapshots", "changes", "runs", "fetch_log")
        }
        return counts
    finally:
        conn.close()


def table_rows(path: str | Path, table: str) -> list[tuple]:
    conn = sqlite3.connect(str(path), timeout=30)
    try:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
    finally:
        conn.close()


def check_history(path: str | Path) -> None:
    """Each trial's changes, applied in order to its first snapshot, rebuild its current record,
    and 'missing' / 'reappeared' alternate (never two 'missing' in a row)."""
    import orjson

    from pipeline.diff import apply_changes, records_equivalent

    conn = sqlite3.connect(str(path), timeout=30)
    try:
        keys = conn.execute("SELECT trial_id, source, snapshot_id FROM trials WHERE snapshot_id IS NOT NULL").fetchall()
        for trial, source, current in keys:
            snaps = conn.execute(
                "SELECT id, record FROM snapshots WHERE trial_id = ? AND source = ? ORDER BY id", (trial, source)
            ).fetchall()
            record = orjson.loads(snaps[0][1])
            for sid, stored in snaps[1:]:
                changes = [
                    {"field": f, "new": orjson.loads(n) if n is not None else None, "kind": k}
                    for f, n, k in conn.execute(
                        "SELECT field, new, kind FROM changes WHERE snapshot_id = ? ORDER BY id", (sid,)
                    )
                ]
                record = apply_changes(record, changes)
                assert records_equivalent(record, orjson.loads(stored)), f"changes of snapshot {sid} ({trial}/{source}) do not rebuild it"
            assert snaps[-1][0] == current
            kinds = [k for (k,) in conn.execute(
                "SELECT kind FROM changes WHERE trial_id = ? AND source = ? AND kind IN ('missing', 'reappeared') ORDER BY id",
                (trial, source))]
            for a, b in zip(kinds, kinds[1:]):
                assert a != b, f"{trial}/{source}: two '{a}' changes in a row"
    finally:
        conn.close()
