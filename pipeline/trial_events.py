"""One trial across registries: derive the links, the discrepancies and the integrity flags.

Called at the end of every refresh run, WHO export import and history backfill
(:func:`update_trials`).  It reads the stored records, links them
(:func:`pipeline.linking.link_records`), compares the copies of each trial
(:mod:`pipeline.crosscheck`) and reads each copy's versions for the integrity flags
(:mod:`pipeline.integrity`); the store writes the links, and raises or clears each
discrepancy and flag as one ``changes`` row (``kind`` ``discrepancy`` or ``flag``).

Rebuilding after the run, rather than inside each trial's transaction, keeps the rules
pure and the hot write path untouched.  Only trials with a new snapshot since the last
pass, or whose links moved, have their versions re-read; the date-dependent flags of
the others are re-judged once a day.  A pass over nothing new writes nothing.

A first sighting is a state, not a change (as for fields): the discrepancies and
flags of records never judged before (a new watch, a first import, a database just
migrated) are opened without an event.  From then on each appearance and resolution
is an event.  Adding 20,000 trials to a query watch does not send 20,000 alerts.

The WHO portal's copy of a record held by its primary registry (the WHO copy of an NCT
trial) is judged by the discrepancy rules only: its integrity flags would repeat the
primary record's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from pipeline.clock import utcnow
from pipeline.codec import dumps, loads
from pipeline.crosscheck import Copy, discrepancies, value_since, COMPARED_FIELDS
from pipeline.gc_pause import gc_paused
from pipeline.integrity import FLAG_DEFAULTS, FLAG_SIGNIFICANCE, Version, flags_of
from pipeline.linking import link_additions, link_records, record_keys
from pipeline.record import significance_of
from pipeline.sources import SOURCES
from pipeline.store import Store

Member = tuple[str, str]
_SEEN_KEY = "trial_events_snapshot"   # meta: the newest snapshot id the last pass had read
_DAY_KEY = "trial_events_day"         # meta: the day of the last pass (date-dependent flags)
_CONF_KEY = "trial_events_config"     # meta: the thresholds of the last pass
_PENDING_KEY = "trial_events_pending"  # meta: trials with a disagreement not yet known (judged again next pass)
_MARK_KEY = "trial_events_mark"       # meta: the newest snapshot and change ids right after the last pass
_BATCH = 500                          # trials whose versions are read in one go


@dataclass
class TrialEventsResult:
    trials: int = 0
    judged: int = 0
    raised: int = 0
    cleared: int = 0
    baseline: int = 0   # opened on a first sighting, without an event


def _attr(source: str, name: str, default: Any) -> Any:
    return getattr(SOURCES.get(source), name, default)


def copy_label(source: str) -> str:
    return getattr(SOURCES.get(source), "label", source)


def build_versions(snapshots: list[dict[str, Any]]) -> list[Version]:
    """A copy's snapshots as versions, oldest first, the current one last; repeats merged."""
    def when(s: dict[str, Any]) -> str:
        return s["registry_date"] or (s["record"] or {}).get("last_updated") or (s["fetched_at"] or "")[:10]

    ordered = sorted(snapshots, key=lambda s: (s["current"], when(s), not s["backfilled"], s["id"]))
    out: list[Version] = []
    last_hash = None
    for s in ordered:
        if s["content_hash"] == last_hash or not isinstance(s["record"], dict):
            continue
        last_hash = s["content_hash"]
        out.append(Version(label=f"v{len(out) + 1}", date=when(s) or None, record=s["record"], run_id=s["run_id"]))
    return out


def update_trials(
    store: Store, *, flags: dict[str, int] | None = None, run_id: int | None = None,
    today: date | None = None, now: str | None = None,
) -> TrialEventsResult:
    """Re-derive links, discrepancies and flags; write what moved (see the module docstring)."""
    with gc_paused():  # a version list for each of thousands of records, no cycles
        return _update_trials(store, flags, run_id, today, now)


def _update_trials(
    store: Store, flags: dict[str, int] | None, run_id: int | None, today: date | None, now: str | None,
) -> TrialEventsResult:
    now = now or utcnow()
    today = today or date.fromisoformat(now[:10])
    thresholds = {**FLAG_DEFAULTS, **(flags or {})}
    result = TrialEventsResult()
    same_day = store.get_meta(_DAY_KEY) == today.isoformat() and store.get_meta(_CONF_KEY) == dumps(thresholds)
    if same_day and not loads(store.get_meta(_PENDING_KEY)) and store.get_meta(_MARK_KEY) == _mark(store):
        # Nothing was written since the last pass (no snapshot, no change: a record that
        # went missing or came back writes a change row) and the date-based flags were
        # judged today: the pass would find what it found.  A quiet run stays cheap.
        return result
    moved, new_members = _relink(store)
    seen = int(store.get_meta(_SEEN_KEY) or 0)
    newest = store.max_snapshot_id()
    pending = set(loads(store.get_meta(_PENDING_KEY)) or ())
    if same_day:  # the trials with a new snapshot, new or relinked records, or a pending disagreement
        fresh = store.snapshot_members_since(seen) | new_members
        wanted = moved | pending | set(store.trial_keys_of(fresh).values())
        groups = store.trial_groups(wanted) if wanted else {}
    else:  # a new day (or new thresholds): the date-based flags of every trial are judged again
        groups = store.trial_groups()
    result.trials = len(groups)
    key_of = {m: key for key, members in groups.items() for m, _ in members}
    current: dict[tuple[str, str, str], dict[str, Any]] = {}
    undecided: set[tuple[str, str, str]] = set()
    judged: set[str] = set()
    ordered = sorted(groups)
    for i in range(0, len(ordered), _BATCH):  # a batch's versions read at once, then let go
        batch = {key: [m for m, state in groups[key] if state == "present"] for key in ordered[i : i + _BATCH]}
        snapshots = store.copy_versions(m for members in batch.values() for m in members)
        for key, members in batch.items():
            versions = {m: build_versions(snapshots[m]) for m in members}
            checked = {m: _checked(m[1], snapshots[m]) for m in members}
            judged |= {f"{s}:{t}" for t, s in members}
            result.judged += 1
            _judge_trial(key, members, versions, checked, today, thresholds, current, undecided)
    baseline = {f"{s}:{t}" for t, s in new_members}
    counts = store.save_trial_events(current, judged, run_id, now, baseline, undecided,
                                     keys=(set(groups) | moved) if same_day else None)
    result.raised, result.cleared, result.baseline = counts["raised"], counts["cleared"], counts["baseline"]
    if newest != seen:
        store.set_meta(_SEEN_KEY, str(newest))
    # A pending key not judged now no longer exists (every pending key that does was judged).
    still = sorted({keys_of_pair(ident, key_of) for ident in undecided})
    if still != sorted(pending):
        store.set_meta(_PENDING_KEY, dumps(still))
    if not same_day:
        store.set_meta(_DAY_KEY, today.isoformat())
        store.set_meta(_CONF_KEY, dumps(thresholds))
    mark = _mark(store)  # after this pass's own event rows
    if store.get_meta(_MARK_KEY) != mark:
        store.set_meta(_MARK_KEY, mark)
    return result


def _relink(store: Store) -> tuple[set[str], set[Member]]:
    """Bring ``trial_links`` up to date; returns (the trial keys whose membership moved,
    the records linked for the first time).

    The links are a function of the records and their secondary IDs.  Records that
    came are linked to the others by the keys they share with them
    (:func:`link_additions`: the linked records' trials are joined or merged, never
    recomputed); a record with a new current snapshot that names the same IDs only has
    its snapshot id moved.  Only when a record went or changed its IDs is everything
    relinked (:func:`link_records` over every record).
    """
    touched, gone = store.link_state(touched_only=True)
    ids = store.secondary_ids_of(r.snapshot_id for r in touched.values())
    new_ids = {m: ids.get(r.snapshot_id, "[]") for m, r in touched.items()}
    new_members = {m for m, r in touched.items() if r.trial_key is None}
    changed = any(
        r.link_ids is None or loads(r.link_ids) != loads(new_ids[m])
        for m, r in touched.items() if r.trial_key is not None
    )
    if not gone and not changed:
        moved: set[str] = set()
        if new_members:
            added = {m: {"secondary_ids": loads(new_ids[m]) or []} for m in new_members}
            linked = store.has_links()
            if linked:
                # the records they link to, by an index lookup of their keys (trial_link_keys)
                wanted = set().union(*(own | sec for own, sec in (
                    record_keys(m[0], rec["secondary_ids"]) for m, rec in added.items())))
                hits, key_of = store.link_key_hits(wanted)
                groups = store.trial_groups(set(key_of.values())) if key_of else {}
                members_of = {key: [m for m, _state in members] for key, members in groups.items()}
                keys = link_additions(added, hits, key_of, members_of)
            else:
                keys = link_records(added)
            moved = store.save_trial_links(  # (partial: only these rows are read, unless there are no others)
                keys, {m: (touched[m].snapshot_id, new_ids[m]) for m in new_members}, (), partial=bool(linked))
        rest = {m: (r.snapshot_id, new_ids[m]) for m, r in touched.items() if m not in new_members}
        if rest:
            store.touch_trial_links(rest)
        return moved, new_members
    rows, gone = (touched, gone) if len(touched) == store.linkable_count() else store.link_state()
    unknown = [r.snapshot_id for m, r in rows.items() if m not in new_ids and r.linked_snapshot != r.snapshot_id]
    if unknown:  # touched since the read above (cannot happen under the refresh lock; read them all the same)
        ids = store.secondary_ids_of(unknown)
        new_ids.update({m: ids.get(r.snapshot_id, "[]") for m, r in rows.items() if r.snapshot_id in set(unknown)})
    inputs = {m: new_ids[m] if m in new_ids else r.link_ids for m, r in rows.items()}
    records = {m: {"secondary_ids": loads(text) or []} for m, text in inputs.items()}
    keys = link_records(records)
    moved = store.save_trial_links(keys, {m: (r.snapshot_id, inputs[m]) for m, r in rows.items()}, gone)
    new_members |= {m for m, r in rows.items() if r.trial_key is None}
    return moved, new_members


def _mark(store: Store) -> str:
    """What a pass can tell "nothing written since" by: the newest snapshot and change ids."""
    return f"{store.max_snapshot_id()}:{store.max_ids()[0]}"


def keys_of_pair(ident: tuple[str, str, str], keys: dict[Member, str]) -> str:
    """The trial key of an undecided discrepancy (its copies are "source:trial_id" refs)."""
    source, trial_id = ident[2].split()[0].split(":", 1)
    return keys[(trial_id, source)]


def _checked(source: str, snapshots: list[dict[str, Any]]) -> int | None:
    """The run that last checked a copy refreshes keep checking; None for an imported or
    backfilled current record (nothing re-checks it, nothing to wait for)."""
    if not snapshots or snapshots[0]["current_format"] not in _attr(source, "live_formats", ()):
        return None
    return snapshots[0]["checked_run"]


def _judge_trial(
    key: str, members: list[Member], versions: dict[Member, list[Version]], checked: dict[Member, int | None],
    today: date, thresholds: dict[str, int], current: dict[tuple[str, str, str], dict[str, Any]],
    undecided: set[tuple[str, str, str]],
) -> None:
    copies = []
    for trial_id, source in members if len(members) > 1 else ():  # one copy: nothing to compare
        vs = versions.get((trial_id, source)) or []
        if not vs:
            continue
        record = vs[-1].record
        updated = record.get(_attr(source, "updated_field", "last_updated")) or record.get("last_updated")
        history = [(v.date, v.record) for v in vs]
        stored = [(v.run_id, v.record) for v in vs]
        copies.append(Copy(
            trial_id=trial_id, source=source, registry=copy_label(source), record=record, updated=updated,
            updated_word=_attr(source, "updated_word", "last updated"),
            since={name: value_since(history, name) for name in COMPARED_FIELDS},
            checked=checked.get((trial_id, source)),
            changed_at={name: value_since(stored, name) for name in COMPARED_FIELDS},
        ))
    for (name, pair), detail in discrepancies(copies).items():
        if detail.pop("pending"):
            undecided.add(("discrepancy", name, pair))
            continue
        detail["significance"] = significance_of(name)
        current[("discrepancy", name, pair)] = {"trial_key": key, "detail": detail}
    primary_ids = {t for t, s in members if not _attr(s, "copies_others", False)}
    for trial_id, source in members:
        if _attr(source, "copies_others", False) and trial_id in primary_ids:
            continue  # the WHO copy of a record we hold from its own registry
        vs = versions.get((trial_id, source)) or []
        found = flags_of(vs, today, thresholds, results_due=_attr(source, "results_due", False))
        for kind, detail in found.items():
            detail["significance"] = FLAG_SIGNIFICANCE[kind]
            detail["trial_id"], detail["source"], detail["registry"] = trial_id, source, copy_label(source)
            current[("flag", kind, f"{source}:{trial_id}")] = {"trial_key": key, "detail": detail}
