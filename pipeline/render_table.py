"""Plain-text tables for the terminal (pure).

Nothing here asks the terminal anything: the caller passes the ``width`` to fit and a
:class:`Style` (colours on or off).  With ``Style.plain()`` the output is plain text
that depends only on the data and the width, so a file or pipe gets stable text.

A cell is a string or a :class:`Styled` (segments of text, each with a role such
as ``"old"`` or ``"new"``); widths are measured on the text, colour is added last.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from pipeline.codec import query_summary
from pipeline.record import RECORD_KINDS, readable_value

WIDTH = 60
#: The narrowest a flexible column is squeezed to, however narrow the terminal.
MIN_FLEX = 24
ELLIPSIS = "…"

#: C0 and C1 control characters and DEL: registry text is stored verbatim, but a raw
#: ESC, BEL or CSI written to a terminal is an escape-sequence injection.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def escape_controls(text: str) -> str:
    """``text`` with control characters shown as ``\\xNN`` (safe to print to a terminal).

    For tables and messages a person reads on a terminal, where the escape shows what
    the registry sent.  Reports use :func:`pipeline.report.model.printable` instead,
    which replaces controls with U+FFFD (no backslashes in HTML, feeds and CSV).
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


# -- colour ---------------------------------------------------------------------------------

#: SGR codes per role; a role not listed is printed as is.  Old and new values are
#: faint and bold, not red and green: a new status of "terminated" is no good news.
_SGR = {"old": "2", "new": "1", "head": "1", "sig": "33", "dim": "2", "id": "36"}


@dataclass(frozen=True)
class Style:
    """Whether to colour, and how: ``paint(text, role)``."""

    color: bool = False

    @classmethod
    def plain(cls) -> "Style":
        return cls(False)

    def paint(self, text: str, role: str | None) -> str:
        code = _SGR.get(role or "")
        if not self.color or not code or not text:
            return text
        return f"\033[{code}m{text}\033[0m"


PLAIN = Style.plain()


@dataclass
class Styled:
    """Text made of segments, each with a role (None: no colour)."""

    parts: list[tuple[str, str | None]] = field(default_factory=list)

    def add(self, text: str, role: str | None = None) -> "Styled":
        if text:
            self.parts.append((text, role))
        return self

    def extend(self, other: "Styled") -> "Styled":
        self.parts.extend(other.parts)
        return self

    @property
    def text(self) -> str:
        return "".join(t for t, _ in self.parts)

    def __len__(self) -> int:
        return len(self.text)

    def render(self, style: Style) -> str:
        return "".join(style.paint(t, r) for t, r in self.parts)

    def __str__(self) -> str:
        return self.text


Cell = "str | Styled"


def _text(cell: Any) -> str:
    return cell.text if isinstance(cell, Styled) else escape_controls(str(cell))


def _render(cell: Any, style: Style) -> str:
    return cell.render(style) if isinstance(cell, Styled) else escape_controls(str(cell))


# -- values ---------------------------------------------------------------------------------


def one_line(value: Any) -> str:
    """A field value on one line (whitespace runs collapsed, control characters escaped)."""
    if value is None or value == []:
        text = "-"
    elif isinstance(value, str):
        text = " ".join(value.split())
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = "; ".join(" ".join(v.split()) for v in value)
    else:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return escape_controls(text)


def short(value: Any, width: int | None = WIDTH) -> str:
    """A one-line rendering of a field value, cut to ``width`` characters (None: whole)."""
    text = one_line(value)
    if width is None or len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + ELLIPSIS


def differing_span(old: str, new: str) -> tuple[int, int, int]:
    """``(prefix, old_end, new_end)``: ``old[prefix:old_end]`` became ``new[prefix:new_end]``."""
    limit = min(len(old), len(new))
    p = 0
    while p < limit and old[p] == new[p]:
        p += 1
    s = 0
    while s < limit - p and old[len(old) - 1 - s] == new[len(new) - 1 - s]:
        s += 1
    return p, len(old) - s, len(new) - s


def cut_around(text: str, lo: int, hi: int, width: int | None, role: str | None = None) -> Styled:
    """``text`` cut to ``width`` characters around ``text[lo:hi]`` (the part that changed).

    Context is kept on both sides; an ellipsis marks each cut end.  The changed part
    gets ``role`` (its colour).  ``width`` None: the whole text.
    """
    out = Styled()
    if width is None or len(text) <= width:
        return out.add(text[:lo]).add(text[lo:hi], role).add(text[hi:])
    width = max(width, 3)
    span = hi - lo
    room = width - 2  # the text between the two ellipses
    # Context before the change: half of what the change leaves, or a little when it does not fit.
    before = (room - span) // 2 if span <= room else min(4, room // 3)
    start = max(0, lo - before)
    head = start > 0
    end = start + width - head
    if end >= len(text):  # the change is near the end: show the end, more context before
        end = len(text)
        start = len(text) - (width - 1)
        head, tail = True, False
    else:
        tail = True
        end -= 1
    if head:
        out.add(ELLIPSIS, "dim")
    a, b = max(lo, start), min(hi, end)
    if a < b:
        out.add(text[start:a]).add(text[a:b], role).add(text[b:end])
    else:
        out.add(text[start:end])
    if tail:
        out.add(ELLIPSIS, "dim")
    return out


def event_text(change: dict[str, Any]) -> str:
    """A discrepancy or flag event in words: "raised: <summary>" or "resolved: <summary>"."""
    detail = change.get("new") if change.get("new") is not None else change.get("old")
    summary = detail.get("summary", "") if isinstance(detail, dict) else one_line(detail)
    what = "discrepancy" if change.get("kind") == "discrepancy" else "flag"
    state = "raised" if change.get("new") is not None else "resolved"
    return escape_controls(f"{what} {state}: {summary}")


def describe_change(change: dict[str, Any], width: int | None = WIDTH) -> Styled:
    """``old -> new`` cut around what changed, or ``+ added  - removed`` for list fields.

    ``width`` is the room for the whole description (None: whole values).
    """
    out = Styled()
    if change.get("kind") in ("missing", "reappeared"):
        text = {"missing": "record no longer returned by the registry", "reappeared": "record is back"}[change["kind"]]
        return out.add(short(text, width))
    if change.get("kind") == "query":
        return out.add(short(escape_controls(query_summary(change)), width), "new")
    if change.get("kind") in ("discrepancy", "flag"):
        return out.add(short(event_text(change), width))
    if (change.get("kind") or "field") not in RECORD_KINDS:  # a discrepancy or flag: one line
        raised = change.get("new") is not None
        event = change.get("new") if raised else change.get("old")
        summary = event.get("summary") if isinstance(event, dict) else event
        text = f"{change['kind'].replace('_', ' ')} {'raised' if raised else 'resolved'}"
        return out.add(short(text + (f": {one_line(summary)}" if summary else ""), width))
    if change.get("added") is not None or change.get("removed") is not None:
        parts = [("+ ", change.get("added"), "new"), ("- ", change.get("removed"), "old")]
        parts = [(mark, items, role) for mark, items, role in parts if items]
        if not parts:
            return out.add("(reordered)")
        texts = [one_line(items if isinstance(items, list) else [items]) for _, items, _ in parts]
        rooms: list[int | None] = [None] * len(parts)
        if width is not None:
            # Each part's share; a part shorter than its share leaves the rest to the other.
            share = max((width - 2 * (len(parts) - 1)) // len(parts) - 2, 8)
            spare = sum(share - len(t) for t in texts if len(t) < share)
            rooms = [None if len(t) <= share else share + spare for t in texts]
        for i, ((mark, _, role), text, room) in enumerate(zip(parts, texts, rooms)):
            if i:
                out.add("  ")
            out.add(mark, role).add(short(text, room), role)
        return out
    name = change.get("field") or ""
    old, new = one_line(readable_value(name, change.get("old"))), one_line(readable_value(name, change.get("new")))
    p, old_end, new_end = differing_span(old, new)
    room = None if width is None else max((width - 4) // 2, 8)
    if room is not None and len(old) + len(new) + 4 <= width:
        room = None  # both fit whole
    elif room is not None and len(old) <= room:
        room_new = width - 4 - len(old)
        return out.extend(cut_around(old, p, old_end, None, "old")).add(" -> ", "dim").extend(
            cut_around(new, p, new_end, room_new, "new"))
    elif room is not None and len(new) <= room:
        room_old = width - 4 - len(new)
        return out.extend(cut_around(old, p, old_end, room_old, "old")).add(" -> ", "dim").extend(
            cut_around(new, p, new_end, None, "new"))
    return out.extend(cut_around(old, p, old_end, room, "old")).add(" -> ", "dim").extend(
        cut_around(new, p, new_end, room, "new"))


# -- tables ---------------------------------------------------------------------------------


def table(
    rows: Iterable[Sequence[Any]],
    headers: list[str],
    *,
    style: Style = PLAIN,
) -> str:
    """Left-aligned columns separated by two spaces (cells are printed whole)."""
    rows = [list(r) for r in rows]
    texts = [[_text(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in texts:
        widths = [max(w, len(c)) for w, c in zip(widths, r)]
    lines = ["  ".join(style.paint(h, "head") + " " * (w - len(h)) for h, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for r, t in zip(rows, texts):
        cells = [_render(c, style) + " " * (w - len(x)) for c, x, w in zip(r, t, widths)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def flex_width(fixed: list[str | int], total: int | None) -> int | None:
    """Room left for the last column once the ``fixed`` columns (texts or widths) and gaps are laid out."""
    if total is None:
        return None
    used = sum(c if isinstance(c, int) else len(c) for c in fixed) + 2 * len(fixed)
    return max(total - used, MIN_FLEX)


def changes_table(changes: list[dict[str, Any]], *, width: int | None = 120, style: Style = PLAIN) -> str:
    """The ``changes`` listing, the last column cut (around the change) to fit ``width``."""
    if not changes:
        return "no changes"
    from pipeline.codec import change_date

    headers = ["date", "trial", "source", "significance", "field", "change"]
    fixed = [
        [change_date(c), c["trial_id"], c["source"], c["significance"], escape_controls(c["field"])] for c in changes
    ]
    widths = [max([len(h)] + [len(r[i]) for r in fixed]) for i, h in enumerate(headers[:-1])]
    if width is not None and width - sum(widths) - 2 * len(widths) < MIN_FLEX:
        # Too narrow for a change column: each change on its own line under its row.
        head = table(([f[0], f[1], f[2], Styled().add(f[3], "sig"), f[4]] for f in fixed), headers[:-1],
                     style=style).split("\n")
        lines = head[:2]
        for row, c in zip(head[2:], changes):
            lines += [row, "    " + describe_change(c, max(width - 4, 8)).render(style)]
        return "\n".join(lines)
    room = flex_width(widths, width)
    return table(
        (
            [f[0], f[1], f[2], Styled().add(f[3], "sig"), f[4], describe_change(c, room)]
            for f, c in zip(fixed, changes)
        ),
        headers,
        style=style,
    )


def record_lines(record: dict[str, Any], *, width: int | None = 120, style: Style = PLAIN) -> str:
    """A record as ``field: value`` lines, each cut to ``width`` (None: whole values); status codes as labels."""
    record = {k: readable_value(k, v) for k, v in record.items()}
    key_width = max(len(k) for k in record) if record else 0
    room = None if width is None else max(width - key_width - 2, MIN_FLEX)
    if room is None:
        return "\n".join(
            f"{style.paint(escape_controls(k).ljust(key_width), 'head')}  {_whole(v, key_width + 2)}"
            for k, v in record.items()
        )
    return "\n".join(
        f"{style.paint(escape_controls(k).ljust(key_width), 'head')}  {short(v, room)}" for k, v in record.items()
    )


def _whole(value: Any, indent: int) -> str:
    """A whole value: lists one item a line, text keeping its line breaks, indented under the first."""
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        items = value
    else:
        return one_line(value)
    return ("\n" + " " * indent).join(escape_controls(line) for v in items for line in (v.splitlines() or [""]))
