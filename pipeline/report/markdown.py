"""The Markdown report: for a chat channel, an issue, or an Apprise notification (pure).

One section per trial, each change naming its registry, then the trial's
discrepancies and flags.  Registry values are backslash-escaped, so a title holding
``*``, ``[`` or ``<`` shows as itself and never becomes a link, emphasis or raw HTML.
"""

from __future__ import annotations

import re

from pipeline.report.model import ChangeLine, Report, TrialGroup

_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&])")


def escape_md(text: str) -> str:
    """Escape Markdown's active characters; a line break becomes a space."""
    return _SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _link(text: str, url: str) -> str:
    return f"[{escape_md(text)}]({url})" if url else escape_md(text)


def render_markdown(report: Report) -> str:
    lines = [f"# {escape_md(report.title)}", ""]
    meta = f"Generated {report.generated_at}"
    if report.since:
        meta += f", {escape_md(report.since)}"
    lines += [f"_{meta}_", "", f"**{report.summary()}**"]
    for group in report.groups:
        lines += ["", *_group(group)]
    if report.failures:
        lines += ["", "## Fetch failures", ""]
        for f in report.failures:
            r = f.row
            lines.append(
                f"- {_link(r['trial_id'], f.url)} ({escape_md(f.registry)}): {escape_md(f.describe())} · {r['detected_at']}"
            )
    return "\n".join(lines) + "\n"


def _group(group: TrialGroup) -> list[str]:
    lines = [f"## {_link(group.trial_id, group.url)}"]
    if group.title:
        lines.append(escape_md(group.title))
    lines += ["", " · ".join(
        _link(c.registry + (f" {c.trial_id}" if c.trial_id != group.trial_id else ""), c.url) for c in group.copies
    ), ""]
    for change in group.edits:
        lines.extend(_change(group, change))
    if group.events:
        lines += ["", "**Discrepancies and flags**", ""]
        for e in group.events:
            lines.append(f"- {escape_md(e.describe())} · {escape_md(group.copy_label(e))}")
    return lines


def _change(group: TrialGroup, c: ChangeLine) -> list[str]:
    head = f"- **{c.significance}** · {escape_md(c.label)} · _{escape_md(group.copy_label(c))}_"
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
