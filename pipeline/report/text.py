"""The plain-text report: for a terminal, a log, or the text part of an e-mail (pure).

One block per trial: its ID and title, one line per registry record with its page,
then its changes, each naming its registry, then its discrepancies and flags.
"""

from __future__ import annotations

import textwrap

from pipeline.report.model import ChangeLine, Report, TrialGroup

INDENT = "    "


def render_text(report: Report) -> str:
    lines = [report.title + (f" ({report.since})" if report.since else ""), f"generated {report.generated_at}"]
    lines.append(report.summary())
    for group in report.groups:
        lines.append("")
        lines.extend(_group(group))
    if report.failures:
        lines.append("")
        lines.append("Fetch failures")
        for f in report.failures:
            lines.append(f"  {f.row['trial_id']} [{f.registry}] {f.describe()} ({f.row['detected_at']})")
            lines.append(f"    {f.url}")
    return "\n".join(lines) + "\n"


def _group(group: TrialGroup) -> list[str]:
    lines = [group.trial_id + (f"  {group.title}" if group.title else "")]
    for copy in group.copies:
        name = copy.registry + (f" {copy.trial_id}" if copy.trial_id != group.trial_id else "")
        lines.append(f"  {name}: {copy.url}")
    for change in group.edits:
        lines.extend(_change(group, change))
    if group.events:
        lines.append("  Discrepancies and flags")
        for event in group.events:
            lines.extend(_wrap(f"{event.describe()} · {group.copy_label(event)} ({event.detected_at})", INDENT))
    return lines


def _wrap(text: str, prefix: str) -> list[str]:
    return textwrap.wrap(text, width=100, initial_indent=prefix, subsequent_indent=prefix + "  ") or [prefix]


def _change(group: TrialGroup, c: ChangeLine) -> list[str]:
    head = f"  [{c.significance}] {c.label} · {group.copy_label(c)}"
    if c.row.get("backfilled"):
        head += " (backfilled history)"
    head += f"  ({c.when})"
    out = [head]
    if c.added is not None:
        out += [line for item in c.added for line in _wrap(item, INDENT + "+ ")]
        out += [line for item in c.removed or [] for line in _wrap(item, INDENT + "- ")]
        if not c.added and not c.removed:
            out.append(INDENT + "(reordered)")
    elif c.words is not None:
        marked = " ".join(
            {"same": w.text, "gap": "…", "del": f"[-{w.text}-]", "ins": f"{{+{w.text}+}}"}[w.op] for w in c.words
        )
        out += _wrap(marked, INDENT)
    else:
        out += _wrap(f"{c.old_text} -> {c.new_text}", INDENT)
    return out
