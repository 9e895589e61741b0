"""Field-level comparison of two normalized records (pure).

Rules, in one place so every caller agrees on what a change is:

* Text is compared after whitespace normalization: re-padding a title, re-wrapping
  criteria or trading ``<br>`` for a newline is not a change.
* Lists are compared as collections: the same items in another order is not a
  change; otherwise the change says which items were added and which removed.
* ``None``, ``""`` and ``[]`` all mean "not given" and are equal.
* Noise fields (:data:`pipeline.record.NOISE_FIELDS`) never raise a change.
* The content hash ignores noise and normalizes the same way, so "hash equal" and
  "diff empty" always agree.

A change is a plain dict with keys ``field, old, new, added, removed, significance,
kind``; ``old``/``new`` hold the whole field values so applying the changes to the
old record rebuilds the new one (:func:`apply_changes`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any, Iterable

import orjson

from pipeline.record import NOISE_FIELDS, SUBSTANTIVE_FIELDS, Record, significance_of

Change = dict[str, Any]

#: Keys that identify a record rather than describe the trial.
IDENTITY_FIELDS = frozenset({"trial_id", "source"})

RECORD_FIELD = "_record"  # the pseudo-field of "missing" and "reappeared" changes

#: A registry's own wording travels with its normalized field: when both change, the
#: wording's change is kept as a "detail" (lossless, so applying changes rebuilds the
#: record) but listings and alerts show the normalized change once, not twice.
COMPANION_FIELDS = {
    "recruitment_status_raw": "recruitment_status",
    "target_size_raw": "target_size",
    "primary_outcomes_detail": "primary_outcomes",
    "secondary_outcomes_detail": "secondary_outcomes",
}


#: The ASCII characters ``str.split()`` splits on, but the space.
_ASCII_WS = b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"
#: ... each mapped to the space.
_WS_TO_SPACE = bytes.maketrans(_ASCII_WS, b" " * len(_ASCII_WS))


def _norm_text(value: str) -> str:
    # Fast path (the hash folds every string of every record): a printable string
    # has no whitespace but the ASCII space (every other character str.split()
    # splits on is a control or separator character), so without doubled, leading
    # or trailing spaces it is already folded.
    if value.isprintable() and "  " not in value and value[:1] != " " and value[-1:] != " ":
        return value
    if value.isascii():  # descriptions, criteria: fold in C passes rather than a word object each
        data = value.encode("ascii").translate(_WS_TO_SPACE)
        while b"  " in data:
            data = data.replace(b"  ", b" ")
        return data.strip(b" ").decode("ascii")
    return " ".join(value.split())


def _folded_texts(items: list[Any]) -> bool:
    """Whether ``items`` are all ASCII strings, non-empty and already folded (as
    :func:`_norm_text` leaves them), tested on the strings joined by spaces: a few
    passes in C instead of a call a string (the hash folds every list of every record).

    Joined by single spaces, the text has a whitespace character other than the space
    only if a string does, and a double space or a space at an end only if a string
    starts or ends with a space, holds a double space or is empty.  Non-ASCII text
    goes the slow way.
    """
    try:
        joined = " ".join(items)
    except TypeError:  # not all strings
        return False
    if not joined.isascii():
        return False
    data = joined.encode("ascii")
    return (
        data[:1] not in (b" ", b"") and data[-1:] != b" " and b"  " not in data
        and len(data.translate(None, _ASCII_WS)) == len(data)
    )


def canonical(value: Any) -> Any:
    """The comparison form of a value: whitespace-folded text, empties as None."""
    cls = value.__class__
    if cls is str:
        return _norm_text(value) or None
    if cls is list:
        # The hash folds every list of every record; most are lists of clean text
        # (sites, conditions, outcome lines) and come out sorted as they are.
        if value and value[0].__class__ is str and _folded_texts(value):
            return sorted(value)
        items = []
        append = items.append
        all_text = True
        for v in value:
            if v.__class__ is str:
                v = _norm_text(v)
                if v:
                    append(v)
            elif v is not None:
                v = canonical(v)
                if v is not None:
                    append(v)
                    all_text = False
        if not items:
            return None
        if len(items) > 1:
            # Any deterministic order makes a canonical form; text sorts as itself
            # (most lists are text: locations, conditions, outcomes), anything else
            # by its serialization.
            if all_text:
                items.sort()
            else:
                items.sort(key=_sort_key)
        return items
    if cls is dict:
        out = {}
        for k, v in value.items():
            if v is not None:
                v = canonical(v)
                if v is not None:
                    out[k] = v
        return out or None
    if value is None:
        return None
    if isinstance(value, str):
        return _norm_text(value) or None
    if isinstance(value, list):
        return canonical(list(value))
    if isinstance(value, dict):
        return canonical(dict(value))
    return value


def _sort_key(item: Any) -> bytes:
    return orjson.dumps(item, option=orjson.OPT_SORT_KEYS)


def _item_key(item: Any) -> bytes:
    return orjson.dumps(canonical(item), option=orjson.OPT_SORT_KEYS)


def content_hash(record: Record) -> str:
    """A stable hash of what the record says (noise fields excluded)."""
    body = {}
    for k, v in record.items():
        if k not in NOISE_FIELDS:
            c = canonical(v)
            if c is not None:  # absent, None, "" and [] all mean "not given"
                body[k] = c
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def diff_records(old: Record, new: Record) -> list[Change]:
    """Field changes from ``old`` to ``new``; [] when they say the same thing."""
    changes: list[Change] = []
    fields = [k for k in old.keys() if k not in NOISE_FIELDS and k not in IDENTITY_FIELDS]
    fields += [k for k in new.keys() if k not in old and k not in NOISE_FIELDS and k not in IDENTITY_FIELDS]
    for field in fields:
        before = old.get(field)
        after = new.get(field)
        if before is after or (before.__class__ is str and after.__class__ is str and before == after):
            continue  # the same object, or equal text: equal serializations (most fields, cheaply)
        # Compare the serialized canonical forms, as the content hash does: with ``==``
        # False equals 0 and 1 equals 1.0 (also inside lists), and a new snapshot would
        # get no change row.  Equal raw serializations (fast, C) imply equal canonical ones.
        if orjson.dumps(before) == orjson.dumps(after) or _item_key(before) == _item_key(after):
            continue
        change: Change = {
            "field": field,
            "old": before,
            "new": after,
            "added": None,
            "removed": None,
            "significance": significance_of(field),
            "kind": "field",
        }
        if isinstance(before, list) or isinstance(after, list):
            added, removed = _collection_delta(before or [], after or [])
            change["added"] = added
            change["removed"] = removed
        changes.append(change)
    changed = {c["field"] for c in changes}
    for change in changes:
        main = COMPANION_FIELDS.get(change["field"])
        if main is not None and main in changed:
            change["kind"] = "detail"
    return changes


def _collection_delta(before: Iterable[Any], after: Iterable[Any]) -> tuple[list[Any], list[Any]]:
    before = list(before) if isinstance(before, list) else [before]
    after = list(after) if isinstance(after, list) else [after]
    old_count = Counter(_item_key(i) for i in before if canonical(i) is not None)
    new_count = Counter(_item_key(i) for i in after if canonical(i) is not None)
    added_keys = new_count - old_count
    removed_keys = old_count - new_count
    added, removed = [], []
    for item in after:
        k = _item_key(item)
        if added_keys.get(k, 0) > 0:
            added.append(item)
            added_keys[k] -= 1
    for item in before:
        k = _item_key(item)
        if removed_keys.get(k, 0) > 0:
            removed.append(item)
            removed_keys[k] -= 1
    return added, removed


def missing_change() -> Change:
    """The change recorded when a registry stops returning a trial it returned before."""
    return {
        "field": RECORD_FIELD,
        "old": "present",
        "new": "missing",
        "added": None,
        "removed": None,
        "significance": "status",
        "kind": "missing",
    }


def reappeared_change() -> Change:
    """The change recorded when a trial that was missing comes back."""
    return {
        "field": RECORD_FIELD,
        "old": "missing",
        "new": "present",
        "added": None,
        "removed": None,
        "significance": "status",
        "kind": "reappeared",
    }


def apply_changes(old: Record, changes: Iterable[Change]) -> Record:
    """The record that results from applying recorded field changes to ``old``."""
    out = dict(old)
    for change in changes:
        if change.get("kind", "field") not in ("field", "detail"):
            continue
        out[change["field"]] = change["new"]
    return out


def records_equivalent(a: Record, b: Record) -> bool:
    """True when two records say the same thing (same hash, noise ignored)."""
    return content_hash(a) == content_hash(b)


def _is_empty(value: Any) -> bool:
    return canonical(value) is None


def looks_like_parse_failure(old: Record, new: Record, *, threshold: float = 0.6, minimum: int = 4) -> bool:
    """True when ``new`` lost most of the substantive fields ``old`` had.

    Registrations are edited a field or two at a time; a page that suddenly lacks
    most of them is a broken or redesigned page, and reporting a dozen deletions
    would be the classic scraper false alarm.
    """
    had = [f for f in SUBSTANTIVE_FIELDS if not _is_empty(old.get(f))]
    if len(had) < minimum:
        return False
    lost = [f for f in had if _is_empty(new.get(f))]
    return len(lost) / len(had) >= threshold
