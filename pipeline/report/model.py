"""The report model: stored changes and failure events, grouped and ranked (pure).

Every renderer reads the same :class:`Report`, so the text, Markdown, HTML, JSON,
CSV and Atom forms of one report always say the same thing.  Building it decides
everything a reader sees besides layout:

* changes are grouped by trial (per source), the trial with the most significant
  change first (``SIGNIFICANCE_ORDER``: status, outcomes, enrollment, dates, ...),
  and within a trial most significant first, then oldest first;
* each change reads as old -> new; list fields as items added and removed; long text
  as a word-level diff with the unchanged stretches shortened;
* each trial links to its registry page;
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
from pipeline.record import SIGNIFICANCE_ORDER
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


@dataclass
class ChangeLine:
    """One stored change as a report shows it."""

    row: dict[str, Any]                 # the stored change (JSON columns decoded)
    old_text: str
    new_text: str
    added: list[str] | None = None      # list fields: items added / removed, as text
    removed: list[str] | None = None
    words: list[WordOp] | None = None   # long text: the word diff

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
    def detected_at(self) -> str:
        return self.row["detected_at"]

    @property
    def when(self) -> str:
        """The date shown: the registry's date of the change when known, else when it was detected."""
        return self.row.get("registry_date") or self.row["detected_at"]

    @property
    def rank(self) -> int:
        return _RANK.get(self.significance, len(_RANK))


@dataclass
class TrialGroup:
    """The changes of one trial from one source."""

    trial_id: str
    source: str
    title: str | None
    url: str
    changes: list[ChangeLine] = field(default_factory=list)

    @property
    def registry(self) -> str:
        registry = SOURCES.get(self.source)
        return registry.label if registry is not None else self.source

    @property
    def rank(self) -> int:
        return min(c.rank for c in self.changes)

    @property
    def updated(self) -> str:
        return max(c.detected_at for c in self.changes)


@dataclass
class FailureLine:
    """A failure: the events ``failing`` (failed N runs in a row) and ``recovered``, or
    ``still_failing`` (a date-window report's note of a streak that began before the window)."""

    row: dict[str, Any]
    url: str

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

    def counts(self) -> Counter:
        return Counter(c.significance for c in self.change_lines)

    @property
    def is_empty(self) -> bool:
        return not self.groups and not self.failures

    def summary(self) -> str:
        """One line of counts: '5 changes in 3 trials (status 2, outcomes 1, other 2); 1 failing'."""
        if self.test:
            return "TEST message: the channel works; not an alert, nothing changed"
        n = len(self.change_lines)
        if n:
            counts = self.counts()
            parts = ", ".join(f"{s} {counts[s]}" for s in SIGNIFICANCE_ORDER if counts[s])
            text = f"{n} change{'s' if n != 1 else ''} in {len(self.groups)} trial{'s' if len(self.groups) != 1 else ''} ({parts})"
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
    line = ChangeLine(row, format_value(old), format_value(new))
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
    generated_at: str,
    since: str | None = None,
    title: str = "trialwatch report",
) -> Report:
    """Group and rank stored change rows and failure events into a :class:`Report`."""
    titles = titles or {}
    groups: dict[tuple[str, str], TrialGroup] = {}
    for row in changes:
        key = (row["trial_id"], row["source"])
        if key not in groups:
            name = titles.get(key)
            groups[key] = TrialGroup(row["trial_id"], row["source"], name and printable(name), registry_url(*key))
        groups[key].changes.append(change_line(row))
    for g in groups.values():
        g.changes.sort(key=lambda c: (c.rank, c.id))
    ordered = sorted(groups.values(), key=lambda g: (g.rank, g.trial_id, g.source))
    failure_lines = [
        FailureLine({**f, "error": f.get("error") and printable(f["error"])}, registry_url(f["trial_id"], f["source"]))
        for f in failures
    ]
    return Report(title=title, generated_at=generated_at, since=since, groups=ordered, failures=failure_lines)
