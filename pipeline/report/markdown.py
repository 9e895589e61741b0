"""The Markdown report: for a chat channel, an issue, or an Apprise notification (pure).

Registry values are backslash-escaped, so a title holding ``*``, ``[`` or ``<`` shows
as itself and never becomes a link, emphasis or raw HTML.
"""

from __future__ import annotations

import re

from pipeline.report.model import ChangeLine, Report

_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&])")


def escape_md(text: str) -> str:
    """Escape Markdown's active characters; a line break becomes a space."""
    return _SPECIAL.sub(r"\\\1", " ".join(text.split()))


def render_markdown(report: Report) -> str:
    lines = [f"# {escape_md(report.title)}", ""]
    meta = f"Generated {report.generated_at}"
    if report.since:
        meta += f", {escape_md(report.since)}"
    lines += [f"_{meta}_", "", f"**{report.summary()}**"]
    for group in report.groups:
        lines += ["", f"## [{group.trial_id}]({group.url}) · {group.registry}"]
        if group.title:
            lines.append(f"{escape_md(group.title)}")
        lines.append("")
        for change in group.changes:
            lines.extend(_change(change))
    if report.failures:
        lines += ["", "## Fetch failures", ""]
        for f in report.failures:
            r = f.row
            lines.append(f"- [{r['trial_id']}]({f.url}) ({r['source']}): {escape_md(f.describe())} · {r['detected_at']}")
    return "\n".join(lines) + "\n"


def _change(c: ChangeLine) -> list[str]:
    head = f"- **{c.significance}** · {escape_md(c.label)}"
    if c.row.get("backfilled"):
        head += " (backfilled history)"
    if c.added is not None:
        out = [head + ":"]
        out += [f"  - added: {escape_md(item)}" for item in c.added]
        out += [f"  - removed: ~~{escape_md(item)}~~" for item in c.removed or []]
        return out
    if c.words is not None:
        parts = []
        for w in c.words:
            text = escape_md(w.text)
            parts.append({"same": text, "gap": "…", "del": f"~~{text}~~", "ins": f"**{text}**"}[w.op])
        return [head + ":", "  " + " ".join(parts)]
    return [f"{head}: {escape_md(c.old_text)} → **{escape_md(c.new_text)}**"]
