"""Plain-text tables for the terminal (pure)."""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

WIDTH = 60

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


def short(value: Any, width: int = WIDTH) -> str:
    """A one-line rendering of a field value, cut to ``width`` characters."""
    if value is None or value == []:
        text = "-"
    elif isinstance(value, str):
        text = " ".join(value.split())
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = "; ".join(" ".join(v.split()) for v in value)
    else:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = escape_controls(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def describe_change(change: dict[str, Any], width: int = WIDTH) -> str:
    """``old -> new``, or ``+added -removed`` for list fields."""
    if change.get("kind") in ("missing", "reappeared"):
        return {"missing": "record no longer returned by the registry", "reappeared": "record is back"}[change["kind"]]
    if change.get("added") is not None or change.get("removed") is not None:
        parts = []
        if change.get("added"):
            parts.append("+ " + short(change["added"], width // 2))
        if change.get("removed"):
            parts.append("- " + short(change["removed"], width // 2))
        return "  ".join(parts) or "(reordered)"
    return f"{short(change.get('old'), width // 2)} -> {short(change.get('new'), width // 2)}"


def table(rows: Iterable[Iterable[Any]], headers: list[str]) -> str:
    """Left-aligned columns separated by two spaces."""
    rows = [[escape_controls(str(c)) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, r)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)


def changes_table(changes: list[dict[str, Any]]) -> str:
    if not changes:
        return "no changes"
    return table(
        (
            (c["detected_at"], c["trial_id"], c["source"], c["significance"], c["field"], describe_change(c))
            for c in changes
        ),
        ["detected_at", "trial", "source", "significance", "field", "change"],
    )


def record_lines(record: dict[str, Any]) -> str:
    """A record as ``field: value`` lines (long values cut)."""
    width = max(len(k) for k in record) if record else 0
    return "\n".join(f"{k.ljust(width)}  {short(v, 100)}" for k, v in record.items())
