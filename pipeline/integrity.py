"""Integrity flags: what a trial's own versions say about how it was registered and kept (pure).

Each rule reads one registry copy: its versions oldest first (:class:`Version`: the
live snapshots and the backfilled registry history) and today's date, and returns the
flag's detail (a dict with a human ``summary``) or None.  The rules:

``outcome_switching``  between two consecutive versions dated after the trial's start
    date, a primary outcome was added, removed or moved between primary and secondary
    (major, after Holst et al. 2023), or its measure was reworded or its time frame
    changed (minor).  Dated after the primary completion date as well: ``late``.
``results_overdue``    a registry that records results (ClinicalTrials.gov): the primary
    completion date is more than ``results_overdue_months`` past and no results are posted.
``stale_status``       the status says recruiting, enrolling by invitation or not yet
    recruiting, but the completion date is more than ``stale_completion_months`` past,
    or the record was last updated more than ``stale_update_months`` ago.
``retrospective_registration``  registered after the start date (compared at the
    coarser precision: a registration in the start month of a month-precision start
    date is not flagged).

Dates of month or year precision are read as the *last* day they may mean when the
question is "is it past?" (a completion date "2020-06" is past on 2020-07-01), and
compared at the coarser precision when two dates are compared.
"""

from __future__ import annotations

import calendar
import functools
import difflib
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

#: Flag kinds, in the order they are listed.
FLAG_KINDS: tuple[str, ...] = ("outcome_switching", "results_overdue", "stale_status", "retrospective_registration")

#: Significance of each flag's change-log event (see pipeline.record.SIGNIFICANCE_ORDER).
FLAG_SIGNIFICANCE = {
    "outcome_switching": "outcomes",
    "results_overdue": "results",
    "stale_status": "status",
    "retrospective_registration": "dates",
}

#: The thresholds of ``[flags]`` and their defaults.
FLAG_DEFAULTS: dict[str, int] = {
    "results_overdue_months": 12,
    "stale_completion_months": 6,
    "stale_update_months": 24,
}

OPEN_STATUSES = frozenset({"recruiting", "not_yet_recruiting", "enrolling_by_invitation"})

#: Two measures this similar (difflib ratio, lower-cased) are one outcome reworded, not a swap.
REWORDED = 0.6


@dataclass
class Version:
    """One version of a registry copy."""

    label: str                 # "v3": its number among the copy's versions, oldest first
    date: str | None           # the registry's date of the version (else when it was fetched)
    record: dict[str, Any]
    run_id: int | None = None  # the run that stored it


@functools.lru_cache(maxsize=4096)  # the same few thousand dates, read for every trial of a pass
def end_of(value: str | None) -> date | None:
    """The last day a partial ISO date may mean ("2020-06" -> 2020-06-30); None if not a date."""
    if not isinstance(value, str):
        return None
    m = re.fullmatch(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", value)
    if not m:
        return None
    try:
        year = int(m.group(1))
        month = int(m.group(2) or 12)
        day = int(m.group(3) or calendar.monthrange(year, month)[1])
        return date(year, month, day)
    except ValueError:
        return None


def add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@functools.lru_cache(maxsize=8192)
def months_past(value: str | None, today: date, months: int) -> bool | None:
    """Whether ``value`` (read as its last possible day) is more than ``months`` before ``today``."""
    day = end_of(value)
    if day is None:
        return None
    return add_months(day, months) < today


def after(a: str | None, b: str | None) -> bool | None:
    """Whether date ``a`` is after date ``b`` at the coarser of their precisions."""
    if not a or not b:
        return None
    pa, pb = len(a), len(b)
    if pa not in (4, 7, 10) or pb not in (4, 7, 10):
        return None
    n = min(pa, pb)
    return a[:n] > b[:n]


# -- outcome switching -------------------------------------------------------------------


def _outcomes(record: dict[str, Any], which: str) -> list[tuple[str, str | None]]:
    """(measure, time frame) of the record's primary or secondary outcomes."""
    detail = record.get(f"{which}_outcomes_detail")
    if detail:
        return [((d.get("measure") or "").strip(), (d.get("time_frame") or "").strip() or None) for d in detail]
    out = []
    for text in record.get(f"{which}_outcomes") or ():
        m = re.match(r"(.*?)\s*\[Time Frame:\s*(.*)\]\s*$", text or "", re.S)
        out.append((m.group(1).strip(), m.group(2).strip()) if m else ((text or "").strip(), None))
    return out


def _key(measure: str) -> str:
    return " ".join(re.findall(r"[0-9a-z]+", measure.lower()))


def compare_outcomes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """What happened to the primary outcomes between two versions (empty: nothing)."""
    before, after_ = _outcomes(old, "primary"), _outcomes(new, "primary")
    if not before or not after_:
        return []  # a version without primary outcomes says nothing about switching
    old_sec = {_key(m) for m, _ in _outcomes(old, "secondary")}
    new_sec = {_key(m) for m, _ in _outcomes(new, "secondary")}
    b = {_key(m): (m, t) for m, t in before}
    a = {_key(m): (m, t) for m, t in after_}
    out: list[dict[str, Any]] = []
    for k in sorted(set(b) & set(a)):
        if b[k][1] != a[k][1] and b[k][1] and a[k][1]:
            out.append({"change": "time frame changed", "class": "minor", "outcome": a[k][0],
                        "old": b[k][1], "new": a[k][1]})
    removed = [k for k in b if k not in a]
    added = [k for k in a if k not in b]
    for k in list(removed):
        if k in new_sec:
            out.append({"change": "moved from primary to secondary", "class": "major", "outcome": b[k][0]})
            removed.remove(k)
    for k in list(added):
        if k in old_sec:
            out.append({"change": "moved from secondary to primary", "class": "major", "outcome": a[k][0]})
            added.remove(k)
    for k in list(removed):  # a reworded measure: the most similar added one, if similar enough
        best = max(added, key=lambda x: difflib.SequenceMatcher(None, k, x).ratio(), default=None)
        if best is not None and difflib.SequenceMatcher(None, k, best).ratio() >= REWORDED:
            out.append({"change": "measure reworded", "class": "minor", "outcome": a[best][0], "old": b[k][0],
                        "new": a[best][0]})
            removed.remove(k)
            added.remove(best)
    out += [{"change": "removed", "class": "major", "outcome": b[k][0]} for k in removed]
    out += [{"change": "added", "class": "major", "outcome": a[k][0]} for k in added]
    return out


def outcome_switching(versions: list[Version]) -> dict[str, Any] | None:
    """Primary outcome changes dated after the start date (see the module docstring)."""
    switches = []
    for prev, cur in zip(versions, versions[1:]):
        start = cur.record.get("date_first_enrolment") or prev.record.get("date_first_enrolment")
        if not after(cur.date, start):
            continue
        for s in compare_outcomes(prev.record, cur.record):
            pcd = cur.record.get("primary_completion_date") or cur.record.get("completion_date")
            switches.append({**s, "from": prev.label, "from_date": prev.date, "to": cur.label,
                             "date": cur.date, "start_date": start, "late": bool(after(cur.date, pcd))})
    if not switches:
        return None
    major = any(s["class"] == "major" for s in switches)
    late = any(s["late"] for s in switches)
    first = switches[0]
    summary = (
        f"{'major' if major else 'minor'} primary outcome change{'s' if len(switches) > 1 else ''} after the start "
        f"date ({first['start_date']}){', some after primary completion' if late else ''}: "
        + "; ".join(f"{s['change']} \"{_short(s['outcome'])}\" ({s['from']} {s['from_date']} -> {s['to']} {s['date']})"
                    for s in switches[:5])
        + (f"; and {len(switches) - 5} more" if len(switches) > 5 else "")
    )
    return {"severity": "major" if major else "minor", "late": late, "switches": switches, "summary": summary}


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# -- the current record's flags -------------------------------------------------------------


def results_overdue(record: dict[str, Any], today: date, months: int) -> dict[str, Any] | None:
    """Primary completion more than ``months`` past and no results posted (registries that record results)."""
    pcd = record.get("primary_completion_date")
    if record.get("results_posted") or record.get("recruitment_status") == "withdrawn":
        return None
    if not months_past(pcd, today, months):
        return None
    return {"primary_completion_date": pcd, "months": months,
            "summary": f"primary completion {pcd}, more than {months} months ago, and no results posted"}


def stale_status(record: dict[str, Any], today: date, completion_months: int, update_months: int) -> dict[str, Any] | None:
    """An open status (recruiting, not yet recruiting) that the dates contradict."""
    status = record.get("recruitment_status")
    if status not in OPEN_STATUSES:
        return None
    completion = record.get("completion_date")
    updated = record.get("last_updated")
    reasons = []
    if months_past(completion, today, completion_months):
        reasons.append(f"its completion date {completion} is more than {completion_months} months past")
    if months_past(updated, today, update_months):
        reasons.append(f"it was last updated {updated}, more than {update_months} months ago")
    if not reasons:
        return None
    return {"status": status, "completion_date": completion, "last_updated": updated,
            "summary": f"says {status.replace('_', ' ')} but " + " and ".join(reasons)}


def retrospective_registration(record: dict[str, Any]) -> dict[str, Any] | None:
    """Registered after the start date (at the coarser precision)."""
    registered, start = record.get("date_registration"), record.get("date_first_enrolment")
    if not after(registered, start):
        return None
    return {"date_registration": registered, "date_first_enrolment": start,
            "summary": f"registered {registered}, after its start date {start}"}


def flags_of(
    versions: list[Version], today: date, thresholds: dict[str, int], *, results_due: bool
) -> dict[str, dict[str, Any]]:
    """flag kind -> detail, for one registry copy (its versions oldest first, current last)."""
    if not versions:
        return {}
    t = {**FLAG_DEFAULTS, **thresholds}
    record = versions[-1].record
    rules: dict[str, Callable[[], dict[str, Any] | None]] = {
        "outcome_switching": lambda: outcome_switching(versions),
        "results_overdue": lambda: results_overdue(record, today, t["results_overdue_months"]) if results_due else None,
        "stale_status": lambda: stale_status(record, today, t["stale_completion_months"], t["stale_update_months"]),
        "retrospective_registration": lambda: retrospective_registration(record),
    }
    out = {}
    for kind in FLAG_KINDS:
        detail = rules[kind]()
        if detail is not None:
            out[kind] = detail
    return out
