"""The report model: stored changes and failure events, grouped and ranked (pure).

Every renderer reads the same :class:`Report`, so the text, Markdown, HTML, JSON,
CSV and Atom forms of one report always say the same thing.  Building it decides
everything a reader sees besides layout:

* changes are grouped by trial, whatever registry each came from (the ClinicalTrials.gov
  record and its WHO copy are one trial; ``trial_keys`` links records with other IDs),
  the trial with the most significant change first (``SIGNIFICANCE_ORDER``: status,
  outcomes, enrollment, dates, ...), and within a trial most significant first, then
  ClinicalTrials.gov before WHO, then oldest first; each change names its registry;
* status codes read as their labels ("Active, not recruiting");
* events that are not edits of one record (``discrepancy`` between copies, integrity
  ``flag``) read as one line each: kind, field, raised or resolved, and their summary;
* each change reads as old -> new; list fields as items added and removed; long text
  as a word-level diff with the unchanged stretches shortened;
* each trial links to its registry pages;
* failure events (a trial failing run after run, and its recovery) are their own
  section, never mixed with changes; a report over a date window also lists the
  trials still failing whose alert came before the window.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from pipeline.codec import query_summary
from pipeline.record import RECORD_KINDS, SIGNIFICANCE_ORDER, STATUS_FIELDS, readable_value
from pipeline.sources import SOURCES

#: Text longer than this (either side) is shown as a word-level diff.
LONG_TEXT = 80
#: Unchanged words kept on each side of an edit in a word diff.
CONTEXT_WORDS = 8

_RANK = {name: i for i, name in enumerate(SIGNIFICANCE_ORDER)}


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with control characters shown as U+FFFD.

    A registry value carrying ESC sequences must not recolour or move the cursor of
    the terminal a text report is printed on, and NUL has no place in HTML.
    """
    return _CONTROL.sub("\ufffd", text)


def registry_url(trial_id: str, source: str) -> str:
    """The public page of a trial on the registry it came from ("" for a source no longer known)."""
    registry = SOURCES.get(source)
    return registry.registry_url(trial_id) if registry is not None else ""


def field_label(name: str) -> str:
    """``recruitment_status`` -> ``Recruitment status`` (``_record`` -> ``Record``)."""
    text = name.strip("_").replace("_", " ")
    return text[:1].upper() + text[1:]


def format_value(value: Any) -> str:
    """One value as readable text: lists as '; '-joined items, empties as '(none)'."""
    if value is None or value == "" or value == []:
        return "(none)"
    if isinstance(value, str):
        return printable(value.strip())
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "; ".join(format_item(v) for v in value)
    return printable(json.dumps(value, ensure_ascii=False, sort_keys=True))


def format_item(item: Any) -> str:
    """One list item: dicts as 'key: value' pairs, the rest as :func:`format_value`."""
    if isinstance(item, dict):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in item.items() if v not in (None, "", []))
    return format_value(item)


@dataclass(frozen=True)
class WordOp:
    """A run of words in a word diff: ``same``, ``del`` (old only), ``ins`` (new only) or ``gap``."""

    op: str
    text: str


def word_diff(old: str, new: str, context: int = CONTEXT_WORDS) -> list[WordOp]:
    """Word-level diff of two texts, unchanged stretches cut to ``context`` words each side."""
    a, b = old.split(), new.split()
    ops: list[WordOp] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    codes = matcher.get_opcodes()
    for i, (tag, i1, i2, j1, j2) in enumerate(codes):
        if tag == "equal":
            words = a[i1:i2]
            first, last = i == 0, i == len(codes) - 1
            keep_head = 0 if first else context
            keep_tail = 0 if last else context
            if len(words) > keep_head + keep_tail + 1:
                if keep_head:
                    ops.append(WordOp("same", " ".join(words[:keep_head])))
                ops.append(WordOp("gap", "…"))
                if keep_tail:
                    ops.append(WordOp("same", " ".join(words[-keep_tail:])))
            else:
                ops.append(WordOp("same", " ".join(words)))
            continue
        if tag in ("delete", "replace"):
            ops.append(WordOp("del", " ".join(a[i1:i2])))
        if tag in ("insert", "replace"):
            ops.append(WordOp("ins", " ".join(b[j1:j2])))
    return ops


def source_label(source: str) -> str:
    """The registry's name for people ("ClinicalTrials.gov"), or the source name if no longer known."""
    registry = SOURCES.get(source)
    return registry.label if registry is not None else source


def _source_order(source: str) -> int:
    order = list(SOURCES)
    return order.index(source) if source in order else len(order)


@dataclass
class ChangeLine:
    """One stored change as a report shows it."""

    row: dict[str, Any]                 # the stored change (JSON columns decoded)
    old_text: str
    new_text: str
    added: list[str] | None = None      # list fields: items added / removed, as text
    removed: list[str] | None = None
    words: list[WordOp] | None = None   # long text: the word diff
    summary: str | None = None          # events: the event's own words

    @property
    def id(self) -> int:
        return self.row["id"]

    @property
    def field(self) -> str:
        return self.row["field"]

    @property
    def label(self) -> str:
        if self.kind == "query":
            return f"Query {self.row['field']}"
        return field_label(self.row["field"])

    @property
    def significance(self) -> str:
        return self.row["significance"]

    @property
    def kind(self) -> str:
        return self.row.get("kind") or "field"

    @property
    def is_event(self) -> bool:
        """A discrepancy, an integrity flag or any other event: not an edit of one record."""
        return self.kind not in RECORD_KINDS

    @property
    def kind_label(self) -> str:
        return field_label(self.kind)

    @property
    def state(self) -> str:
        """Events: ``raised`` (``new`` holds the event) or ``resolved`` (``old`` does)."""
        return "raised" if self.row.get("new") is not None else "resolved"

    @property
    def trial_id(self) -> str:
        return self.row["trial_id"]

    @property
    def source(self) -> str:
        return self.row["source"]

    @property
    def registry(self) -> str:
        return source_label(self.row["source"])

    @property
    def detected_at(self) -> str:
        return self.row["detected_at"]

    @property
    def when(self) -> str:
        """The date shown: the registry's date of the change when known, else when it was detected."""
        return self.row.get("registry_date") or self.row["detected_at"]

    @property
    def rank(self) -> int:
        return _RANK.get(self.significance, len(_RANK))

    def describe(self) -> str:
        """The change on one line of plain text (the ``description`` of the JSON and CSV rows)."""
        if self.is_event:
            return f"{self.kind_label} · {self.label}: {self.state}" + (f" — {self.summary}" if self.summary else "")
        if self.added is not None:
            parts = []
            if self.added:
                parts.append("added: " + "; ".join(self.added))
            if self.removed:
                parts.append("removed: " + "; ".join(self.removed))
            return " · ".join(parts) or "(reordered)"
        return f"{self.old_text} -> {self.new_text}"


@dataclass(frozen=True)
class Copy:
    """One registry record of a trial that has rows in a report."""

    trial_id: str
    source: str
    url: str

    @property
    def registry(self) -> str:
        return source_label(self.source)


@dataclass
class TrialGroup:
    """Everything a report says about one trial, across its registry copies."""

    key: str                            # the trial (trial_id, or the cross-registry trial key)
    trial_id: str                       # the ID shown: the key when it is one of the copies' IDs
    title: str | None
    copies: list[Copy]                  # the records with rows here, ClinicalTrials.gov first
    changes: list[ChangeLine] = field(default_factory=list)   # every row, edits and events

    @property
    def url(self) -> str:
        """The first copy's registry page."""
        return self.copies[0].url if self.copies else ""

    @property
    def edits(self) -> list[ChangeLine]:
        """The changes to the copies' fields (and records missing or back)."""
        return [c for c in self.changes if not c.is_event]

    @property
    def events(self) -> list[ChangeLine]:
        """Discrepancies between copies, integrity flags: raised or resolved."""
        return [c for c in self.changes if c.is_event]

    def needs_registry_id(self, change: ChangeLine) -> bool:
        """Whether a change's label must name its record's ID (a linked record with another ID)."""
        return change.trial_id != self.trial_id

    def copy_label(self, change: ChangeLine) -> str:
        """``ClinicalTrials.gov``, or ``WHO ICTRP EUCTR2020-…`` for a linked record with its own ID."""
        return change.registry + (f" {change.trial_id}" if self.needs_registry_id(change) else "")

    @property
    def rank(self) -> int:
        return min(c.rank for c in self.changes)

    @property
    def updated(self) -> str:
        return max(c.detected_at for c in self.changes)

    def event_counts(self) -> Counter:
        return Counter(c.kind for c in self.events)

    def summary(self) -> str:
        """``2 changes, 1 discrepancy``."""
        parts = [count_words(len(self.edits), "change")] if self.edits else []
        parts += [count_words(n, _kind_noun(kind)) for kind, n in sorted(self.event_counts().items())]
        return ", ".join(parts)

    def what_changed(self) -> str:
        """A short line for the overview: field labels, most significant first; a status as
        old → new (per registry where the copies moved differently); events counted by kind."""
        parts: list[str] = []
        moves: dict[str, list[ChangeLine]] = {}
        for c in self.edits:
            if c.field in STATUS_FIELDS and c.kind == "field":
                moves.setdefault(c.label, []).append(c)
        for c in self.edits:
            if c.label in moves:
                same = {(m.old_text, m.new_text) for m in moves[c.label]}
                if len(same) == 1:
                    text = f"{c.label} ({c.old_text} → {c.new_text})"
                else:
                    text = f"{c.label} (" + "; ".join(
                        f"{self.copy_label(m)}: {m.old_text} → {m.new_text}" for m in moves[c.label]) + ")"
            elif c.kind in ("missing", "reappeared"):
                text = c.new_text[:1].upper() + c.new_text[1:]
            else:
                text = c.label
            if text not in parts:
                parts.append(text)
        by_kind: dict[str, list[str]] = {}
        for e in self.events:
            by_kind.setdefault(e.kind, [])
            if e.label not in by_kind[e.kind]:
                by_kind[e.kind].append(e.label)
        for kind in sorted(by_kind):
            n = sum(1 for e in self.events if e.kind == kind)
            parts.append(f"{count_words(n, _kind_noun(kind))} ({', '.join(by_kind[kind])})")
        return "; ".join(parts)


def _kind_noun(kind: str) -> str:
    return field_label(kind).lower()


def count_words(n: int, noun: str) -> str:
    """``1 discrepancy``, ``2 discrepancies``, ``3 flags``."""
    if n == 1:
        return f"1 {noun}"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return f"{n} {noun[:-1]}ies"
    return f"{n} {noun}s"


@dataclass
class FailureLine:
    """A failure: the events ``failing`` (failed N runs in a row) and ``recovered``, or
    ``still_failing`` (a date-window report's note of a streak that began before the window)."""

    row: dict[str, Any]
    url: str
    trial: str = ""                     # the trial key (see TrialGroup.key)

    @property
    def registry(self) -> str:
        return source_label(self.row["source"])

    def describe(self) -> str:
        r = self.row
        if r["kind"] == "still_failing":
            text = f"still failing: {r['streak']} runs in a row"
            return text + (f"; last error: {r['error']}" if r.get("error") else "")
        if r["kind"] == "recovered":
            return f"recovered (it had failed {r['streak']} or more runs in a row)" if r["streak"] else "recovered"
        text = f"failed {r['streak']} runs in a row"
        if r.get("error"):
            text += f"; last error: {r['error']}"
        return text


@dataclass
class Report:
    """What a report says, before any layout."""

    title: str
    generated_at: str
    since: str | None                    # a human description of the window
    groups: list[TrialGroup]
    failures: list[FailureLine]
    #: A test message (`trialwatch check --channels`, `deliver --test`): no change, not an alert.
    test: bool = False

    @property
    def change_lines(self) -> list[ChangeLine]:
        """Every change in report order (the rows of the JSON and CSV forms)."""
        return [c for g in self.groups for c in g.changes]

    @property
    def edits(self) -> list[ChangeLine]:
        return [c for c in self.change_lines if not c.is_event]

    @property
    def events(self) -> list[ChangeLine]:
        return [c for c in self.change_lines if c.is_event]

    def counts(self) -> Counter:
        """Changes by significance (events not included)."""
        return Counter(c.significance for c in self.edits)

    def event_counts(self) -> Counter:
        """Events by kind: ``{"discrepancy": 2, "flag": 1}``."""
        return Counter(c.kind for c in self.events)

    @property
    def is_empty(self) -> bool:
        return not self.groups and not self.failures

    def summary(self) -> str:
        """One line of counts, trials counted once whatever their registries:
        '5 changes in 3 trials (status 2, outcomes 1, other 2); 1 discrepancy; 1 trial failing'."""
        if self.test:
            return "TEST message: the channel works; not an alert, nothing changed"
        n = len(self.edits)
        trials = len(self.groups)
        in_trials = f" in {count_words(trials, 'trial')}"
        events = [count_words(k, _kind_noun(kind)) for kind, k in sorted(self.event_counts().items())]
        if n:
            counts = self.counts()
            known = [s for s in SIGNIFICANCE_ORDER if counts[s]]
            known += sorted(s for s in counts if s not in SIGNIFICANCE_ORDER)
            parts = ", ".join(f"{s} {counts[s]}" for s in known)
            text = f"{count_words(n, 'change')}{in_trials} ({parts})"
            if events:
                text += "; " + ", ".join(events)
        elif events:
            text = ", ".join(events) + in_trials
        else:
            text = "no changes"
        failing = sum(1 for f in self.failures if f.row["kind"] in ("failing", "still_failing"))
        recovered = sum(1 for f in self.failures if f.row["kind"] == "recovered")
        if failing:
            text += f"; {failing} trial{'s' if failing != 1 else ''} failing"
        if recovered:
            text += f"; {recovered} recovered"
        return text


def change_line(row: dict[str, Any]) -> ChangeLine:
    """Turn a stored change into what a reader sees."""
    kind = row.get("kind") or "field"
    old, new = row.get("old"), row.get("new")
    if kind == "missing":
        return ChangeLine(row, "present", "no longer returned by the registry")
    if kind == "reappeared":
        return ChangeLine(row, "missing", "returned by the registry again")
    if kind == "query":  # a trial started or stopped matching a query watch
        was = isinstance(old, dict) and old.get("state") == "member"
        return ChangeLine(row, "matching" if was else "not matching", printable(query_summary(row)))
    if kind not in RECORD_KINDS:  # an event: new holds it when raised, old when resolved
        event = new if new is not None else old
        summary = event.get("summary") if isinstance(event, dict) else event
        text = format_value(summary) if summary not in (None, "", []) else None
        return ChangeLine(row, "", "", summary=text)
    field_name = row["field"]
    line = ChangeLine(row, format_value(readable_value(field_name, old)), format_value(readable_value(field_name, new)))
    if row.get("added") is not None or row.get("removed") is not None:
        line.added = [format_item(v) for v in row.get("added") or []]
        line.removed = [format_item(v) for v in row.get("removed") or []]
    elif isinstance(old, str) and isinstance(new, str) and max(len(old), len(new)) > LONG_TEXT:
        line.words = word_diff(printable(old), printable(new))
    return line


def build_report(
    changes: Iterable[dict[str, Any]],
    failures: Iterable[dict[str, Any]] = (),
    *,
    titles: Mapping[tuple[str, str], str | None] | None = None,
    trial_keys: Mapping[tuple[str, str], str] | None = None,
    generated_at: str,
    since: str | None = None,
    title: str = "trialwatch report",
) -> Report:
    """Group and rank stored change rows and failure events into a :class:`Report`.

    A trial is the unit: the rows of every registry record of one trial go into one
    group.  ``trial_keys`` maps ``(trial_id, source)`` to the trial a record belongs to
    (records linked across registries share a key); a record it does not list is the
    trial of its ``trial_id``, so the WHO copy of an NCT trial joins the NCT record.
    """
    titles = titles or {}
    trial_keys = trial_keys or {}

    def key_of(trial_id: str, source: str) -> str:
        return trial_keys.get((trial_id, source)) or trial_id

    rows_by_key: dict[str, list[dict[str, Any]]] = {}
    for row in changes:
        rows_by_key.setdefault(key_of(row["trial_id"], row["source"]), []).append(row)
    groups = []
    for key, rows in rows_by_key.items():
        records = sorted({(r["trial_id"], r["source"]) for r in rows}, key=lambda r: (_source_order(r[1]), r[1], r[0]))
        ids = [t for t, _ in records]
        shown = key if key in ids else ids[0]
        records.sort(key=lambda r: (r[0] != shown, _source_order(r[1]), r[1], r[0]))
        name = next((titles[r] for r in records if titles.get(r)), None)
        group = TrialGroup(key, shown, name and printable(name), [Copy(t, s, registry_url(t, s)) for t, s in records])
        group.changes = sorted(
            (change_line(r) for r in rows), key=lambda c: (c.rank, _source_order(c.source), c.id)
        )
        groups.append(group)
    # most significant first; of equal rank, the trial with more changes of that rank first
    ordered = sorted(groups, key=lambda g: (g.rank, -sum(c.rank == g.rank for c in g.changes), g.trial_id, g.key))
    failure_lines = [
        FailureLine({**f, "error": f.get("error") and printable(f["error"])}, registry_url(f["trial_id"], f["source"]),
                    key_of(f["trial_id"], f["source"]))
        for f in failures
    ]
    return Report(title=title, generated_at=generated_at, since=since, groups=ordered, failures=failure_lines)
