"""History backfill: a trial's versions, back to first registration.

Works on a source whose ``history`` API is not None (today ClinicalTrials.gov:
:data:`pipeline.sources.ctgov.HISTORY`).

``GET /api/int/studies/{id}?history=true`` lists the versions (number, date, status,
modules changed); ``GET /api/int/studies/{id}/history/{v}`` gives the record as it
stood at version ``v`` (HTML entities unescaped by
:func:`pipeline.sources.ctgov.parse.parse_history_version`, so it normalizes like a live
record).  :func:`backfill_trial` stores every version as a snapshot dated by the
registry (``registry_date``, ``registry_version``, ``backfilled = 1``) and the changes
between consecutive versions, marked ``backfilled`` (alerts never send them) with
``detected_at`` = the version's date.  So ``trialwatch history ID`` can answer "when
did the primary outcome change?" on day one.

Rules:

* Idempotent: a version already stored is not fetched or written again; a trial that
  gained versions since continues its chain from the last stored one.
* A live current snapshot stays current: backfilled snapshots never move the
  ``trials`` row, and no change is derived between history and live snapshots.  A
  trial never fetched live adopts its newest version as current, so the next live
  refresh diffs against it (the latest version and the live record normalize alike:
  no spurious changes).
* A version that cannot be fetched ends that trial's backfill for this run (a later
  version's diff must not span a gap); the next run goes on from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.clock import utcnow
from pipeline.diff import content_hash, diff_records
from pipeline.errors import FetchError, ParseError
from pipeline.sources import Source
from pipeline.store import Store

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.http_client import RegistryClient


@dataclass
class BackfillOutcome:
    """What backfilling one trial did."""

    trial_id: str
    versions: int = 0          # versions the registry lists
    stored: int = 0            # versions stored by this call
    changes: int = 0           # changes derived by this call
    adopted: bool = False      # the newest version became the current snapshot
    error: str | None = None


def version_time(day: str | None) -> str | None:
    """The registry's version date as a stored timestamp (UTC midnight of that day)."""
    if not day:
        return None
    return f"{day}T00:00:00Z" if len(day) == 10 else day


def backfill_trial(
    store: Store, client: RegistryClient, source: Source, trial_id: str, run_id: int | None = None
) -> BackfillOutcome:
    """Load one trial's whole version history into the store (see the module docstring)."""
    out = BackfillOutcome(trial_id)
    history = source.history
    if history is None:
        out.error = f"{source.label} keeps no version history"
        return out
    try:
        index = history.fetch_index(client, trial_id)
    except (FetchError, ParseError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
        return out
    if index is None:
        out.error = "the registry has no such study (404)"
        return out
    if not index:
        out.error = "the registry gave no version history"
        return out
    out.versions = len(index)
    stored = store.backfilled_versions(trial_id, source.name)
    parser_version = source.parser_version
    prev_record: dict | None = None
    prev_snapshot: int | None = None
    for entry in index:
        number = entry["version"]
        if number in stored:
            prev_snapshot, prev_record = stored[number], None
            continue
        if prev_record is None and prev_snapshot is not None:
            snap = store.load_snapshot(prev_snapshot)
            prev_record = snap["record"] if snap else None
        try:
            got = history.fetch_version(client, trial_id, number)
            if got is None:
                raise FetchError(f"version {number} of {trial_id} not found (404)")
            study, body = got
            record = history.normalize(study)
        except (FetchError, ParseError) as exc:
            out.error = f"version {number}: {type(exc).__name__}: {exc}"
            return out
        record["trial_id"] = trial_id
        changes = diff_records(prev_record, record) if prev_record is not None else []
        snapshot_id = store.save_backfilled_version(
            trial_id,
            source.name,
            record=record,
            content_hash=content_hash(record),
            raw=body,
            raw_format=history.raw_format,
            parser_version=parser_version,
            registry_version=number,
            registry_date=entry.get("date"),
            changes=changes,
            detected_at=version_time(entry.get("date")) or utcnow(),
            run_id=run_id,
        )
        if snapshot_id is not None:
            out.stored += 1
            out.changes += len(changes)
        prev_record, prev_snapshot = record, snapshot_id
    out.adopted = store.finish_backfill(trial_id, source.name, len(index))
    return out
