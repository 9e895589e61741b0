"""A trial's versions, numbered one way, for ``trialwatch history`` (pure).

A trial's snapshots come from two places: live refreshes (``fetched_at``) and the
registry's version history (``backfill``: ``registry_version``, ``registry_date``).
The same registry version is often seen by both.  Here each source's snapshots
become one chain of versions numbered 1..N, oldest first:

* A live snapshot that says what a backfilled version says (same content hash and
  the same registry ``last_updated`` date) *is* that version: it is merged into it,
  so its change is listed once (the backfill's, which is the finer-grained one).
* Other live snapshots are versions of their own, placed by date (the registry's date
  when the snapshot has one, as an imported export's does, else when it was fetched);
  each chain keeps its own order.
* Changes without a snapshot (the record went missing or came back) are events
  between the versions, not numbered.

Database ids appear only in :func:`history_json`.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Version:
    number: int
    source: str
    when: str                              # UTC timestamp the version is dated by
    snapshot: dict[str, Any]               # the backfilled snapshot when there is one, else the live one
    live: list[dict[str, Any]] = field(default_factory=list)   # live snapshots that saw this version
    changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def backfilled(self) -> bool:
        return bool(self.snapshot["backfilled"])

    @property
    def seen_live_at(self) -> str | None:
        return min((s["fetched_at"] for s in self.live), default=None)


@dataclass
class Event:
    """A change with no snapshot of its own (missing, reappeared)."""

    source: str
    when: str
    change: dict[str, Any]


def registry_time(day: str | None) -> str | None:
    """A registry date (``YYYY-MM-DD``) as a stored timestamp (UTC midnight)."""
    if not day:
        return None
    return f"{day}T00:00:00Z" if len(day) == 10 else day


def build_history(
    snapshots: list[dict[str, Any]],
    changes: list[dict[str, Any]],
    last_updated: dict[int, str | None],
) -> dict[str, list[Version | Event]]:
    """Source -> its versions and events, oldest first (see the module docstring)."""
    by_snapshot: dict[int, list[dict[str, Any]]] = {}
    loose: list[dict[str, Any]] = []
    for c in changes:
        (by_snapshot.setdefault(c["snapshot_id"], []) if c.get("snapshot_id") else loose).append(c)
    out: dict[str, list[Version | Event]] = {}
    for source in sorted({s["source"] for s in snapshots} | {c["source"] for c in loose}):
        back = sorted(
            (s for s in snapshots if s["source"] == source and s["backfilled"]),
            key=lambda s: (s["registry_version"] if s["registry_version"] is not None else -1, s["id"]),
        )
        live = sorted((s for s in snapshots if s["source"] == source and not s["backfilled"]), key=lambda s: s["id"])
        key = lambda s: (s["content_hash"], last_updated.get(s["id"]))  # noqa: E731
        back_versions = [
            Version(0, source, registry_time(s["registry_date"]) or s["fetched_at"], s,
                    changes=list(by_snapshot.get(s["id"], [])))
            for s in back
        ]
        newest_by_key: dict[tuple, Version] = {}
        for v in back_versions:
            newest_by_key[key(v.snapshot)] = v  # later versions win: a live copy is of the newest
        own: list[Version] = []
        for s in live:
            match = newest_by_key.get(key(s))
            if match is not None:
                match.live.append(s)
            else:
                own.append(Version(0, source, registry_time(s["registry_date"]) or s["fetched_at"], s, [s], list(by_snapshot.get(s["id"], []))))
        versions = list(heapq.merge(back_versions, own, key=lambda v: v.when or ""))
        for n, v in enumerate(versions, 1):
            v.number = n
        events = [Event(source, registry_time(c.get("registry_date")) or c["detected_at"], c) for c in loose if c["source"] == source]
        out[source] = list(heapq.merge(versions, events, key=lambda e: e.when or ""))
    return out


def history_json(trial_id: str, history: dict[str, list[Version | Event]], change_json) -> dict[str, Any]:
    """The ``history --json`` document: versions with their database ids, then other changes."""
    versions = []
    other = []
    for entries in history.values():
        for e in entries:
            if isinstance(e, Event):
                other.append(change_json(e.change))
                continue
            versions.append(
                {
                    **e.snapshot,
                    "version": e.number,
                    "date": e.when,
                    "backfilled": e.backfilled,
                    "seen_live_at": e.seen_live_at,
                    "snapshot_ids": sorted({e.snapshot["id"], *(s["id"] for s in e.live)}),
                    "changes": [change_json(c) for c in e.changes],
                }
            )
    return {"trial_id": trial_id, "versions": versions, "other_changes": other}
