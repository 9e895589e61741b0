"""What the trial page shows, built from rows the plugin read (pure: no I/O).

The copies of a trial side by side (:func:`side_by_side`), its timeline of changes
(:func:`timeline`) and the differences between two stored versions (:func:`version_diff`,
with the project's own :func:`pipeline.diff.diff_records`).  Lines are the report's
:class:`~pipeline.report.model.ChangeLine` (readable old -> new, items added / removed,
word diffs for long text); the templates escape every value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

from pipeline.diff import diff_records
from pipeline.record import COMMON_FIELDS, CTGOV_EXTRA_FIELDS, STATUS_LABELS, WHO_EXTRA_FIELDS, Record
from pipeline.report.model import ChangeLine, change_line, field_label, format_value, printable

#: Change kinds the change code itself writes; any other kind (a discrepancy between
#: registries, an integrity flag, ...) is shown generically: its kind and its summary.
KNOWN_KINDS = frozenset({"field", "detail", "missing", "reappeared"})
#: Fields the side-by-side view leaves out (identity, and the registry: the column heads name it).
HIDDEN_FIELDS = frozenset({"trial_id", "source", "registry"})
#: Longest text shown whole in a side-by-side cell; longer text is folded.
FOLD_AT = 400

_FIELD_ORDER = {name: i for i, name in enumerate((*COMMON_FIELDS, *CTGOV_EXTRA_FIELDS, *WHO_EXTRA_FIELDS))}


@dataclass
class FieldRow:
    """One field across the copies: its label, its text per copy, and whether they differ."""

    field: str
    label: str
    values: list[str]
    differs: bool

    @property
    def long(self) -> bool:
        return any(len(v) > FOLD_AT for v in self.values)


def status_label(code: str | None) -> str:
    """``active_not_recruiting`` -> ``Active, not recruiting`` (an unknown code as it is)."""
    if not code:
        return "(none)"
    return STATUS_LABELS.get(code, code)


def _text(field: str, value: Any) -> str:
    if field == "recruitment_status" and isinstance(value, str):
        return status_label(value)
    return format_value(value)


def side_by_side(records: list[Record]) -> tuple[list[FieldRow], int]:
    """The fields some copy fills, in record order, each copy's value as text; and how many are empty in all."""
    fields = sorted({k for r in records for k in r if k not in HIDDEN_FIELDS},
                    key=lambda k: (_FIELD_ORDER.get(k, len(_FIELD_ORDER)), k))
    rows, empty = [], 0
    for name in fields:
        if all(_is_empty(r.get(name)) for r in records):
            empty += 1
            continue
        values = [_text(name, r.get(name)) if name in r else "(not in this registry)" for r in records]
        rows.append(FieldRow(name, field_label(name), values, len(set(values)) > 1))
    return rows, empty


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def decode_change(row: dict[str, Any]) -> dict[str, Any]:
    """A ``changes`` row with its JSON columns decoded (a value that is not JSON stays text)."""
    out = dict(row)
    for key in ("old", "new", "added", "removed"):
        value = out.get(key)
        if isinstance(value, str):
            try:
                out[key] = json.loads(value)
            except ValueError:
                pass
    return out


def event_line(row: dict[str, Any]) -> ChangeLine:
    """One decoded change of any kind as a line: known kinds as the report shows them, others generically."""
    kind = row.get("kind") or "field"
    if kind in KNOWN_KINDS:
        line = change_line(row)
        if row.get("field") == "recruitment_status":
            line.old_text, line.new_text = _text("recruitment_status", row.get("old")), _text(
                "recruitment_status", row.get("new"))
        return line
    line = change_line(row)  # an event (discrepancy, flag, ...): raised or resolved, and its summary
    if not line.is_event:  # a query watch's membership: its own words
        return line
    if line.summary is None:
        line.summary = _summary(row.get("new") if row.get("new") is not None else row.get("old"))
    return line


def _summary(value: Any) -> str:
    if isinstance(value, dict) and value.get("summary") is not None:
        return printable(str(value["summary"]))
    return format_value(value)


def flag_line(row: dict[str, Any]) -> dict[str, Any]:
    """An open ``trial_flags`` row as the trial page shows it: kind, what it is about, its summary,
    the records involved (``ctgov NCT…``) and since when (text only: the template escapes it)."""
    try:
        detail = json.loads(row["detail"]) if isinstance(row.get("detail"), str) else row.get("detail")
    except ValueError:
        detail = row.get("detail")
    summary = detail.get("summary") if isinstance(detail, dict) else detail
    kind = row.get("kind") or "flag"
    return {
        "kind": kind,
        "kind_label": "Discrepancy" if kind == "discrepancy" else "Flag",
        "subject": field_label(str(row.get("subject") or "")),
        "summary": format_value(summary) if summary not in (None, "", []) else "",
        "severity": detail.get("severity") if isinstance(detail, dict) else None,
        "copies": [c.replace(":", " ", 1) for c in str(row.get("copies") or "").split()],
        "raised_at": str(row.get("raised_at") or ""),
    }


def timeline(rows: Iterable[dict[str, Any]]) -> list[ChangeLine]:
    """The trial's changes as lines, newest first (the rows' order is kept: the query orders them)."""
    return [event_line(decode_change(r)) for r in rows]


def version_diff(old: Record, new: Record) -> list[ChangeLine]:
    """The field-level differences from ``old`` to ``new``, as lines (word diffs for long text)."""
    return [event_line({**c, "id": 0, "detected_at": ""}) for c in diff_records(old, new)]
