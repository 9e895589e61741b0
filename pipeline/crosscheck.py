"""Where two registry copies of one trial disagree (pure).

Compared, for each pair of linked copies that both hold a value:

``recruitment_status``  on the common scale of :data:`STATUS_MEANING`: each status
    stands for the set of precise states it may mean, and two statuses disagree only
    when those sets do not meet.  The WHO portal's plain "Not recruiting" may mean not
    yet recruiting, active (not recruiting), suspended, completed, terminated or
    withdrawn: it agrees with all of these and disagrees with recruiting (and
    enrolling by invitation).  "Unknown" and missing statuses are not compared.
``target_size``         the numbers differ.
``date_first_enrolment``, ``completion_date``  differ at the coarser of the two
    precisions ("2020-06" and "2020-06-15" compare by month; a year against a day,
    by year).  A copy with no date is not compared.
``primary_sponsor``     the names differ after :func:`normalize_sponsor`, and
    neither's words contain the other's.
``primary_outcomes``    the numbers of primary outcomes differ (both non-zero).

Two records with different IDs from the same registry (EU-CTR's national records of
one trial, "EUCTR2021-000037-14-PL" and "-PT") are parts of one registration, not
copies: they are not compared with each other.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Iterable

from pipeline.trial_ids import registry_of

#: Status -> the precise states it may stand for (the common scale of both registries).
STATUS_MEANING: dict[str, frozenset[str]] = {
    "not_yet_recruiting": frozenset({"not_yet_recruiting"}),
    "recruiting": frozenset({"recruiting"}),
    "enrolling_by_invitation": frozenset({"recruiting"}),
    "active_not_recruiting": frozenset({"active_not_recruiting"}),
    "suspended": frozenset({"suspended"}),
    "completed": frozenset({"completed"}),
    "terminated": frozenset({"terminated"}),
    "withdrawn": frozenset({"withdrawn"}),
    "not_recruiting": frozenset(
        {"not_yet_recruiting", "active_not_recruiting", "suspended", "completed", "terminated", "withdrawn"}
    ),
}

#: Compared fields, in the order discrepancies are listed.
COMPARED_FIELDS: tuple[str, ...] = (
    "recruitment_status",
    "target_size",
    "date_first_enrolment",
    "completion_date",
    "primary_sponsor",
    "primary_outcomes",
)

FIELD_WORDS = {
    "recruitment_status": "status",
    "target_size": "target size",
    "date_first_enrolment": "start date",
    "completion_date": "completion date",
    "primary_sponsor": "primary sponsor",
    "primary_outcomes": "number of primary outcomes",
}

_LEGAL = frozenset(
    "inc incorporated ltd limited llc plc gmbh ag sa spa srl bv nv co corp corporation company the "
    "of and kg kk ab as oy pty".split()
)


@dataclass
class Copy:
    """One registry copy of a trial, as the discrepancy rules see it."""

    trial_id: str
    source: str
    registry: str                 # the registry's name for people ("ClinicalTrials.gov")
    record: dict[str, Any]
    updated: str | None = None    # the copy's last-updated (or last-refreshed) date
    updated_word: str = "last updated"
    since: dict[str, str | None] = field(default_factory=dict)  # field -> date its value was first seen
    # A copy a refresh keeps checking: the run that last checked it (None for an imported or
    # backfilled copy, which nothing re-checks), and the run that first stored each field's value.
    checked: int | None = None
    changed_at: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.source}:{self.trial_id}"


def statuses_agree(a: str | None, b: str | None) -> bool | None:
    """True / False on the common scale; None when either cannot be compared."""
    ma, mb = STATUS_MEANING.get(a or ""), STATUS_MEANING.get(b or "")
    if ma is None or mb is None:
        return None
    return bool(ma & mb)


def date_precision(value: str | None) -> int | None:
    """Characters of an ISO date that carry information (4, 7 or 10); None if not a date."""
    if not isinstance(value, str):
        return None
    if re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", value):
        return len(value)
    return None


def dates_agree(a: str | None, b: str | None) -> bool | None:
    """Equal at the coarser of the two precisions; None when either is missing or not a date."""
    pa, pb = date_precision(a), date_precision(b)
    if pa is None or pb is None:
        return None
    n = min(pa, pb)
    return a[:n] == b[:n]  # type: ignore[index]


def normalize_sponsor(name: str | None) -> str:
    """Lower case, no accents or punctuation, no legal-form words ("Inc.", "GmbH", "the")."""
    if not isinstance(name, str):
        return ""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    words = [w for w in re.split(r"[^0-9a-z]+", text) if w and w not in _LEGAL]
    return " ".join(words)


def sponsors_agree(a: str | None, b: str | None) -> bool | None:
    na, nb = normalize_sponsor(a), normalize_sponsor(b)
    if not na or not nb:
        return None
    wa, wb = set(na.split()), set(nb.split())
    return na == nb or wa <= wb or wb <= wa


def _value(record: dict[str, Any], name: str) -> Any:
    value = record.get(name)
    if name == "primary_outcomes":
        return len(value) if value else None
    return value


def field_agrees(name: str, a: Any, b: Any) -> bool | None:
    """Whether two copies' values of a compared field agree (None: not comparable)."""
    if name == "recruitment_status":
        return statuses_agree(a, b)
    if name in ("date_first_enrolment", "completion_date"):
        return dates_agree(a, b)
    if name == "primary_sponsor":
        return sponsors_agree(a, b)
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return None
    if name == "target_size" and not (isinstance(a, int) and isinstance(b, int)):
        return None
    return a == b


def show_value(name: str, value: Any) -> str:
    if value is None:
        return "nothing"
    if name == "recruitment_status":
        return str(value).replace("_", " ")
    return str(value)


def summarize(name: str, older: Copy, newer: Copy, older_value: Any, newer_value: Any) -> str:
    """One line a person reads: "the WHO ICTRP copy (NCT1), last refreshed 2020-12-12, says
    recruiting; ClinicalTrials.gov (NCT1) has said completed since 2021-06-30"."""
    status = name == "recruitment_status"
    says, said = ("says", "has said") if status else (f"gives {FIELD_WORDS.get(name, name)}", "has given")
    first = f"the {older.registry} copy ({older.trial_id})"
    if older.updated:
        first += f", {older.updated_word} {older.updated},"
    first += f" {says} {show_value(name, older_value)}"
    second = f"{newer.registry} ({newer.trial_id})"
    since = newer.since.get(name)
    if since:
        second += f" {said} {show_value(name, newer_value)} since {since}"
    else:
        second += f" {says.split()[0]} {show_value(name, newer_value)}"
        if newer.updated:
            second += f" ({newer.updated_word} {newer.updated})"
    return f"{first}; {second}"


def compare_copies(a: Copy, b: Copy) -> list[dict[str, Any]]:
    """The discrepancies between two copies: one detail dict per disagreeing field."""
    out = []
    # the copy updated longer ago is named first: that is where staleness shows
    older, newer = sorted((a, b), key=lambda c: (c.updated or "", c.ref))
    for name in COMPARED_FIELDS:
        va, vb = _value(older.record, name), _value(newer.record, name)
        if field_agrees(name, va, vb) is not False:
            continue
        out.append(
            {
                "field": name,
                "pending": behind(older, newer, name) or behind(newer, older, name),
                "summary": summarize(name, older, newer, va, vb),
                "copies": [
                    {
                        "trial_id": c.trial_id,
                        "source": c.source,
                        "registry": c.registry,
                        "value": v,
                        "updated": c.updated,
                        "since": c.since.get(name),
                    }
                    for c, v in ((older, va), (newer, vb))
                ],
            }
        )
    return out


def behind(copy: Copy, other: Copy, name: str) -> bool:
    """Whether ``copy`` is one a refresh re-checks and has not been checked since ``other``'s
    value of ``name`` was stored: then their disagreement is not known yet (the daemon
    refreshes each registry on its own schedule; a ClinicalTrials.gov change must not be
    called a discrepancy before the WHO copy was looked at again)."""
    changed = other.changed_at.get(name)
    return copy.checked is not None and changed is not None and copy.checked < changed


def discrepancies(copies: Iterable[Copy]) -> dict[tuple[str, str], dict[str, Any]]:
    """(field, "ref ref") -> detail, over every pair of present copies of one trial.

    A detail with ``pending`` True is a disagreement not yet known (see :func:`behind`):
    an open discrepancy stays open, none is raised.
    """
    ordered = sorted(copies, key=lambda c: c.ref)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            if a.trial_id != b.trial_id and registry_of(a.trial_id) == registry_of(b.trial_id):
                continue  # two records of one registry (EU-CTR's national records): parts, not copies
            for detail in compare_copies(a, b):
                out[(detail["field"], f"{a.ref} {b.ref}")] = detail
    return out


def value_since(versions: list[tuple[Any, dict[str, Any]]], name: str) -> Any:
    """The date of the first of the newest run of versions that held the current value of ``name``.

    ``versions``: (date, record) oldest first, the current one last (or (run id, record):
    the run that first stored it).
    """
    if not versions:
        return None
    current = _value(versions[-1][1], name)
    since = versions[-1][0]
    for date, record in reversed(versions):
        if _value(record, name) != current:
            break
        since = date or since
    return since
