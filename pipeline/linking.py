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

import orjson

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


class _Sets:
    """Disjoint sets (union-find with path halving); a set's root is its smallest element."""

    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def find(self, x: Any) -> Any:
        parent = self.parent
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: Any, b: Any) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def link_records(records: Mapping[Member, Mapping[str, Any]]) -> dict[Member, str]:
    """(trial_id, source) -> trial key, for every record given (see the module docstring)."""
    sets = _Sets()
    find, union = sets.find, sets.union

    owners: dict[str, list[Member]] = {}
    for member in sorted(records):
        for key in own_keys(member[0]):
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


def own_keys(trial_id: str) -> set[str]:
    """The keys of a record's own ID: its :func:`id_keys`, or, for an ID too short or too
    odd to have any, the ID as written (two records with the same ID are one trial)."""
    return id_keys(trial_id) or {"=" + trial_id}


def record_keys(trial_id: str, secondary_ids: Iterable[Any]) -> tuple[set[str], set[str]]:
    """(the keys of a record's own ID, the keys of its secondary IDs)."""
    secondary: set[str] = set()
    for value in secondary_ids or ():
        secondary |= id_keys(value)
    return own_keys(trial_id), secondary


def link_key_rows(trial_id: str, source: str, link_ids: str | None) -> list[tuple[str, str, str, int]]:
    """A linked record's rows of the store's ``trial_link_keys``: (key, trial_id, source,
    1 for a key of its secondary IDs else 0), from the secondary IDs it was linked by
    (``link_ids``, JSON; None: not known yet, its own keys only)."""
    own, secondary = record_keys(trial_id, (orjson.loads(link_ids) or []) if link_ids else [])
    return [(k, trial_id, source, 0) for k in own] + [(k, trial_id, source, 1) for k in secondary]


def key_hits(keys: set[str], linked: Mapping[Member, Iterable[Any]]) -> list[tuple[str, Member, bool]]:
    """(key, linked record, whether it is a key of its secondary IDs) for each of ``keys``
    that a linked record (``linked``: each record's secondary IDs) has."""
    hits: list[tuple[str, Member, bool]] = []
    for member, secondary_ids in linked.items():
        own, secondary = record_keys(member[0], secondary_ids)
        hits += [(key, member, False) for key in own & keys]
        hits += [(key, member, True) for key in secondary & keys]
    return hits


def link_additions(
    new: Mapping[Member, Mapping[str, Any]],
    hits: Iterable[tuple[str, Member, bool]],
    key_of: Mapping[Member, str],
    members_of: Mapping[str, Iterable[Member]],
) -> dict[Member, str]:
    """The trial keys after records are added to records already linked, the same as
    :func:`link_records` over all of them would give, without relinking the others.

    ``new``: the added records (their ``secondary_ids``).  ``hits``: for every key of
    the added records (:func:`record_keys`) found among the linked records, (key,
    linked record, whether it is a key of that record's secondary IDs)
    (:func:`key_hits`).  ``key_of``: the trial key of each record hit; ``members_of``:
    every record of those trials.  Returns the trial key of every added record and of
    every linked record whose trial an added one joined.  The links are
    :func:`link_records`'s: the same ID, or one's secondary ID naming the other's own
    ID (two secondary IDs alike link nothing).
    """
    base = link_records(new)  # the added records among themselves
    sets = _Sets()
    find, union = sets.find, sets.union

    by_key: dict[str, list[tuple[Member, bool]]] = {}
    for member in new:
        own, secondary = record_keys(member[0], new[member].get("secondary_ids") or ())
        for key in own:
            by_key.setdefault(key, []).append((member, True))
        for key in secondary - own:
            by_key.setdefault(key, []).append((member, False))
    for key, linked, is_secondary in hits:
        for member, is_own in by_key.get(key, ()):
            if is_own or not is_secondary:
                union("n|" + base[member], "k|" + key_of[linked])
    out = dict(base)
    of_base: dict[str, list[Member]] = {}
    for member, key in base.items():
        of_base.setdefault(key, []).append(member)
    components: dict[str, list[Member]] = {}
    for node in list(sets.parent):
        root = find(node)
        kind, name = node.split("|", 1)
        if kind == "n":
            components.setdefault(root, []).extend(of_base[name])
        else:
            components.setdefault(root, []).extend(members_of.get(name, ()))
    for members in components.values():
        key = trial_key_of(m[0] for m in members)
        for member in members:
            out[member] = key
    return out
