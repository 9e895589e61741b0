"""Which stored records describe the same trial (pure).

A trial is the set of registry records that describe it.  Two records are linked when

* they carry the same trial ID (ClinicalTrials.gov's record and the WHO portal's copy
  of it: same NCT ID, two sources), or
* one lists the other's ID among its secondary IDs (a ClinicalTrials.gov record
  naming a EudraCT, ISRCTN or CTRI number that is watched or imported; a WHO record
  naming an NCT ID that is stored).

Links are transitive (a union-find over records).  A trial's key is the NCT ID of one
of its records when it has one (the smallest, should it have several), else the
smallest trial ID among its records.  IDs are compared by :func:`id_keys`: case and
punctuation do not matter, and a EudraCT number matches the EU-CTR ID built on it
("2020-001052-18" and "EUCTR2020-001052-18-DE").
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from pipeline.trial_ids import is_nct

#: A EudraCT number standing alone (not the first part of a CTIS number, which has a 4th group).
_EUDRACT = re.compile(r"(?<![\d-])(\d{4}-\d{6}-\d{2})(?![\d]|-\d)")
_PUNCT = re.compile(r"[^0-9A-Z]")
_DIGIT = re.compile(r"[0-9]")

Member = tuple[str, str]  # (trial_id, source)


def id_keys(value: str) -> set[str]:
    """The forms under which an ID can match another record's ID (empty for junk)."""
    if not isinstance(value, str):
        return set()
    if len(value) == 11 and value[:3] == "NCT" and value[3:].isascii() and value[3:].isdigit():
        return {value}  # an NCT ID, as most are: already its only key
    keys = set()
    plain = _PUNCT.sub("", value.upper())
    if len(plain) >= 6 and _DIGIT.search(plain):
        keys.add(plain)
    if "-" in value:  # (every relink reads every record's IDs: skip the search where it cannot match)
        for match in _EUDRACT.finditer(value):
            keys.add("EUDRACT" + match.group(1))
    return keys


def trial_key_of(trial_ids: Iterable[str]) -> str:
    """The key of a trial made of records with these IDs: an NCT ID if any, else the smallest ID."""
    ids = sorted(set(trial_ids))
    ncts = [t for t in ids if is_nct(t)]
    return (ncts or ids)[0]


def link_records(records: Mapping[Member, Mapping[str, Any]]) -> dict[Member, str]:
    """(trial_id, source) -> trial key, for every record given (see the module docstring)."""
    parent: dict[Member, Member] = {m: m for m in records}

    def find(m: Member) -> Member:
        while parent[m] != m:
            parent[m] = parent[parent[m]]
            m = parent[m]
        return m

    def union(a: Member, b: Member) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    owners: dict[str, list[Member]] = {}
    for member in sorted(records):
        for key in id_keys(member[0]):
            owners.setdefault(key, []).append(member)
    for group in owners.values():
        for other in group[1:]:
            union(group[0], other)
    for member, record in records.items():
        for secondary in record.get("secondary_ids") or ():
            for key in id_keys(secondary):
                for owner in owners.get(key, ()):
                    union(member, owner)
    groups: dict[Member, list[Member]] = {}
    for member in records:
        groups.setdefault(find(member), []).append(member)
    out: dict[Member, str] = {}
    for members in groups.values():
        key = trial_key_of(m[0] for m in members)
        for member in members:
            out[member] = key
    return out
