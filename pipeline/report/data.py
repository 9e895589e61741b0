"""JSON and CSV reports: the same rows as the tables, for scripts and spreadsheets (pure).

Each change row has the keys of ``trialwatch changes --json`` plus ``id``, ``title``,
``url`` (the page of the record the change is about), ``trial`` (the trial it belongs
to: its ``trial_id``, or the key linking records across registries), ``registry`` (the
record's registry by name) and ``description`` (the change on one line, status codes
as labels, an event as kind, field, raised or resolved and its summary), in report
order: trial by trial.  ``summary.changes`` counts edits of records,
``summary.events`` discrepancies and flags by kind, ``summary.trials`` distinct trials.  JSON adds the summary and the failure events; CSV is
the change rows alone (one kind of row per file), values that are lists or objects
written as JSON, control characters in text shown as U+FFFD (JSON escapes them), and
text that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) given a
leading ``'``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from pipeline.report.model import ChangeLine, Report, TrialGroup, printable, registry_url

CSV_COLUMNS = (
    "id", "trial_id", "source", "title", "url", "significance", "field", "kind", "old", "new",
    "added", "removed", "detected_at", "registry_date", "backfilled",
    # after the first ones, so a script that reads columns by position keeps working
    "trial", "registry", "description",
)


def change_row(group: TrialGroup, change: ChangeLine) -> dict[str, Any]:
    """The public form of one change in a report."""
    from pipeline.codec import change_json

    return {
        "id": change.id, **change_json(change.row), "title": group.title, "url": registry_url(change.trial_id, change.source),
        "trial": group.key, "registry": change.registry, "description": change.describe(),
    }


def rows(report: Report) -> list[dict[str, Any]]:
    return [change_row(g, c) for g in report.groups for c in g.changes]


def failure_rows(report: Report) -> list[dict[str, Any]]:
    keys = ("id", "trial_id", "source", "kind", "streak", "error", "detected_at")
    return [{**{k: f.row.get(k) for k in keys}, "url": f.url, "trial": f.trial} for f in report.failures]


def render_json(report: Report) -> str:
    counts = report.counts()
    doc = {
        "title": report.title,
        "generated_at": report.generated_at,
        "since": report.since,
        "summary": {
            "text": report.summary(),
            "changes": len(report.edits),
            "trials": len(report.groups),
            "by_significance": {k: v for k, v in counts.items()},
            "events": dict(report.event_counts()),
            "failures": len(report.failures),
        },
        "changes": rows(report),
        "failures": failure_rows(report),
    }
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def csv_cell(value: Any, *, list_sep: str | None = None) -> str:
    """One value as a CSV cell that is safe to open in a spreadsheet or print on a terminal.

    The one encoder of every CSV trialwatch writes (``report --format csv`` and
    ``export --format csv``).  Lists of text are joined with ``list_sep`` when given;
    other lists and objects are written as JSON (C0 controls escaped by JSON, DEL and
    C1 escaped here too).  Control characters in text become U+FFFD, and text a
    spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab or CR first) gets
    a leading ``'``.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if list_sep is not None and isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = list_sep.join(value)
    if isinstance(value, str):
        text = printable(value)  # a CSV printed on a terminal must not carry ESC sequences
        # A cell starting with = + - @ (or tab, CR) runs as a formula in a spreadsheet
        # (CSV injection: a registry title '=HYPERLINK(...)' would); a leading ' keeps it text.
        return "'" + text if text[:1] in _FORMULA_START else text
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_C1 = re.compile("[\x7f-\x9f]")


def render_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows(report):
        writer.writerow([csv_cell(row.get(k)) for k in CSV_COLUMNS])
    return out.getvalue()
