"""Deciding what one trial's refresh writes (pure).

Given what the store knew of a trial and what the registry said this run,
the ``plan_*`` functions return an :class:`Update`: whether to take a
snapshot, which changes to record, and the trial's new state.  No I/O, so every
case (first sighting, unchanged, changed, missing, reappeared, a page that lost
most of its fields) is tested on data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.diff import content_hash, diff_records, looks_like_parse_failure, missing_change, reappeared_change
from pipeline.record import Record

@dataclass
class TrialState:
    """What the store knows of one trial from one source, for the pure update planner."""

    trial_id: str
    source: str
    state: str
    snapshot_id: int | None
    content_hash: str | None
    fail_streak: int
    record: dict[str, Any] | None = None
    parser_version: int | None = None
    raw: bytes | None = None
    raw_format: str | None = None
    alerted_failure: bool = False
    #: Answered runs in a row in which the registry said it has no such trial while the
    #: deletion was withheld (a suspected registry fault).  Failed runs leave it alone.
    vanish_streak: int = 0


@dataclass
class Update:
    """Everything one trial's refresh writes, decided by the pure planner, saved at once."""

    trial_id: str
    source: str
    outcome: str                      # new | changed | unchanged | missing | failed | reappeared
    record: dict[str, Any] | None = None
    content_hash: str | None = None
    raw: bytes | None = None
    raw_format: str | None = None
    parser_version: int = 1
    changes: list[dict[str, Any]] = field(default_factory=list)
    new_snapshot: bool = False
    error: str | None = None
    registry_date: str | None = None
    registry_version: int | None = None
    backfilled: bool = False
    detected_at: str | None = None
    #: A failure that is the registry's "no such trial", withheld by the vanish guard:
    #: it counts towards the trial's ``vanish_streak``; any other failure does not.
    suspected_vanish: bool = False


def plan_missing(state: TrialState | None, trial_id: str, source: str, now: str) -> Update:
    """The registry says it has no such trial."""
    changes = []
    if state is not None and state.state == "present":
        changes = [missing_change()]
    return Update(trial_id, source, "missing", changes=changes, detected_at=now)


def plan_failed(trial_id: str, source: str, error: str, now: str) -> Update:
    """No usable document this run: an error for the operator, never a change."""
    return Update(trial_id, source, "failed", error=error, detected_at=now)


def plan_withheld_vanish(trial_id: str, source: str, error: str, now: str) -> Update:
    """The registry says the trial is gone, but that is not believed yet: a failure for
    the run that counts one more answered run without the trial (``vanish_streak``)."""
    update = plan_failed(trial_id, source, error, now)
    update.suspected_vanish = True
    return update


def plan_found(
    state: TrialState | None,
    record: Record,
    *,
    old_record: Record | None,
    raw: bytes | None,
    raw_format: str | None,
    parser_version: int,
    now: str,
    new_hash: str | None = None,
) -> Update:
    """The registry returned a record; compare it with the stored one.

    ``old_record`` is the stored current record (re-read with the current parser
    where the parser changed); it is only needed when the hashes differ.
    """
    trial_id, source = record["trial_id"], record["source"]
    h = new_hash or content_hash(record)
    base = dict(
        trial_id=trial_id,
        source=source,
        record=record,
        content_hash=h,
        raw=raw,
        raw_format=raw_format,
        parser_version=parser_version,
        detected_at=now,
    )
    if state is None or state.snapshot_id is None:
        return Update(outcome="new", new_snapshot=True, **base)
    was_missing = state.state == "missing"
    if h == state.content_hash:
        if was_missing:
            return Update(outcome="reappeared", changes=[reappeared_change()], **base)
        return Update(outcome="unchanged", **{**base, "raw": None})
    old = old_record or {}
    if not was_missing and looks_like_parse_failure(old, record):
        return plan_failed(
            trial_id,
            source,
            "ParseError: the document lost most of the fields the stored record has "
            "(page layout change or broken page?); not recorded as a change",
            now,
        )
    changes = diff_records(old, record)
    if was_missing:
        changes = [reappeared_change(), *changes]
    outcome = "reappeared" if was_missing else ("changed" if changes else "unchanged")
    return Update(outcome=outcome, new_snapshot=True, changes=changes, **base)
