"""Deciding what one trial's refresh writes (pure).

Given what the store knew of a trial and what the registry said this run,
the ``plan_*`` functions return an :class:`Update`: whether to take a
snapshot, which changes to record, and the trial's new state.  No I/O, so every
case (first sighting, unchanged, changed, missing, reappeared, a page that lost
most of its fields) is tested on data.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal

from pipeline.clock import utcnow
from pipeline.diff import content_hash, diff_records, looks_like_parse_failure, missing_change, reappeared_change
from pipeline.errors import BlockedPageError, ParseError
from pipeline.record import Record

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.sources.base import Fetched, Source

#: What a source said about one trial this run.
FetchStatus = Literal["found", "missing", "failed"]
#: What one trial's refresh came to.
Outcome = Literal["new", "changed", "unchanged", "missing", "failed", "reappeared"]
#: A trial's state in the store.
TrialStateName = Literal["present", "missing", "pending"]
#: The kind of a recorded change.
ChangeKind = Literal["field", "detail", "missing", "reappeared", "query", "discrepancy", "flag"]
#: Reads a stored snapshot by id (``with_raw`` also loads its raw payload): ``Store.load_snapshot``.
SnapshotReader = Callable[..., "dict[str, Any] | None"]

@dataclass
class TrialState:
    """What the store knows of one trial from one source, for the pure update planner."""

    trial_id: str
    source: str
    state: TrialStateName
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
    outcome: Outcome
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
    #: "missing" for a trial the registry never returned (no snapshot ever): a wrong ID,
    #: not a deletion.
    never_found: bool = False
    #: ``raw`` compressed ahead of the save (``raw`` is then None): written as is.
    raw_zlib: bytes | None = None


def plan_missing(state: TrialState | None, trial_id: str, source: str, now: str) -> Update:
    """The registry says it has no such trial."""
    changes = []
    if state is not None and state.state == "present":
        changes = [missing_change()]
    never_found = state is None or state.snapshot_id is None
    return Update(trial_id, source, "missing", changes=changes, detected_at=now, never_found=never_found)


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


#: The vanish guard.  A registry that suddenly says it has no such trial for at least
#: MASS_MISSING_MIN trials, and at least MASS_MISSING_SHARE of the present trials it
#: answered for, is more likely broken (a portal serving its not-found template for
#: everything, a search index that lost records) than the trials deleted: those trials
#: fail for the run instead of each getting a "missing" change.  Each trial keeps its
#: own count of ANSWERED runs in a row without it (``vanish_streak``): the deletion is
#: believed only in the MASS_MISSING_CONFIRM-th.  A failed run (503, timeout, blocked
#: page) is no answer: it neither counts nor resets the streak; a run that finds the
#: trial resets it.  While any trial of the source is under suspicion (withheld and
#: not seen since), no vanish is believed early, even in a later run where few trials
#: vanish (a run cut short by its budget answers for few).
MASS_MISSING_MIN = 5
MASS_MISSING_SHARE = 0.5
MASS_MISSING_CONFIRM = 3


def judge_vanished(vanished: list[Update], answered_present: int, states: dict[str, TrialState]) -> list[Update]:
    """The present -> missing updates of one source's run, after the vanish guard (pure)."""
    mass = len(vanished) >= MASS_MISSING_MIN and len(vanished) >= MASS_MISSING_SHARE * answered_present
    suspicion = any(s.vanish_streak > 0 for s in states.values())
    out = []
    for u in vanished:
        prior = states.get(u.trial_id)
        streak = prior.vanish_streak if prior is not None else 0
        if streak + 1 >= MASS_MISSING_CONFIRM or (not mass and not suspicion):
            out.append(u)  # gone in enough answered runs in a row, or one of a few: believe it
            continue
        if mass:
            why = (
                f"the registry says it has no such trial, as it did for {len(vanished)} of the "
                f"{answered_present} present trials it answered for in this run: suspected registry fault"
            )
        else:
            why = "the registry says it has no such trial, during a suspected registry fault"
        out.append(
            plan_withheld_vanish(
                u.trial_id,
                u.source,
                f"{why}, not recorded as a deletion yet (answered runs without it: {streak + 1}; "
                f"believed after {MASS_MISSING_CONFIRM} in a row)",
                u.detected_at or utcnow(),
            )
        )
    return out


def plan_fetched(
    load_snapshot: SnapshotReader, state: TrialState | None, fetched: Fetched, source: Source
) -> Update:
    """Normalize one fetched item with its source's parser and plan its update.

    ``load_snapshot(snapshot_id, with_raw=...)`` reads a stored snapshot (only read,
    and only when the content changed).
    """
    now = utcnow()
    trial_id = fetched.trial_id
    if fetched.status == "failed":
        return plan_failed(trial_id, source.name, fetched.error or "fetch failed", now)
    if fetched.status == "missing":
        return plan_missing(state, trial_id, source.name, now)
    try:
        record = source.normalize(trial_id, fetched.payload)
        if record is not None:
            record["trial_id"] = trial_id
            new_hash = content_hash(record)  # also proves the record serializes for the store
    except (ParseError, BlockedPageError) as exc:
        return plan_failed(trial_id, source.name, f"{type(exc).__name__}: {exc}", now)
    except Exception as exc:  # a parser bug must cost one trial, not the run
        return plan_failed(trial_id, source.name, f"internal parser error: {type(exc).__name__}: {exc}", now)
    if record is None:
        return plan_missing(state, trial_id, source.name, now)
    parser_version = source.parser_version
    old_record = None
    if state is not None and state.snapshot_id is not None and new_hash != state.content_hash:
        stored = load_snapshot(state.snapshot_id, with_raw=False)  # the raw only if needed below
        if stored is not None:
            old_record = stored["record"]
            if stored.get("parser_version") != parser_version:
                stored = load_snapshot(state.snapshot_id) or stored
                reread = source.reparse(trial_id, stored.get("raw"), stored.get("raw_format"))
                if reread is not None:
                    reread["trial_id"] = trial_id
                    old_record = reread
    needs_raw = state is None or state.snapshot_id is None or new_hash != state.content_hash
    return plan_found(
        state,
        record,
        old_record=old_record,
        raw=source.raw_bytes(fetched.payload) if needs_raw else None,
        raw_format=fetched.raw_format,
        parser_version=parser_version,
        now=now,
        new_hash=new_hash,
    )


@dataclass
class Tally:
    """What a piece of work came to: counts per outcome and the failures (trial, source, error).

    The one place that says what counts as "fetched": every answer but a failure or
    a missing trial.  refresh, the query watches and the ICTRP import all count with it.
    """

    counts: Counter = field(default_factory=Counter)
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    interrupted: bool = False
    #: (trial, source) of the trials the registry has never returned: wrong IDs, likely.
    not_found: list[tuple[str, str]] = field(default_factory=list)

    def count(self, update: Update) -> None:
        counts = self.counts
        counts[update.outcome] += 1
        if update.outcome == "missing" and update.never_found:
            self.not_found.append((update.trial_id, update.source))
        if update.outcome == "failed":
            self.failures.append((update.trial_id, update.source, update.error or ""))
        elif update.outcome != "missing":
            counts["fetched"] += 1
        counts["changes"] += sum(1 for c in update.changes if c.get("kind") == "field")

    def fail(self, what: str, source: str, error: str) -> None:
        """A failure that is not one trial's update (a query, a study without an ID)."""
        self.counts["failed"] += 1
        self.failures.append((what, source, error))

    def add(self, other: Tally) -> None:
        self.counts.update(other.counts)
        self.failures.extend(other.failures)
        self.not_found.extend(other.not_found)
        self.interrupted = self.interrupted or other.interrupted
