"""The HTML report: one self-contained file for a browser or a phone (pure).

No external assets: the CSS is inline, there are no scripts, fonts or images, so
the file reads the same from a mail client, a download folder or offline.  Every
value that came from a registry (titles, field values, errors, event summaries)
passes through :func:`html.escape`; a title holding ``<script>`` shows as that text.

The report opens with an overview (one line per trial, most significant first, each
linked to the trial's card), then one card per trial.  Old and new values are told
apart by place, a label on narrow screens and an accent bar, in neutral colours:
red and green would paint "terminated" as good news.
"""

from __future__ import annotations

import re
from html import escape

from pipeline.report.model import ChangeLine, FailureLine, Report, TrialGroup

CSS = """
:root { color-scheme: light dark; --fg:#1d232a; --muted:#57606a; --bg:#fff; --card:#f6f8fa; --line:#d0d7de;
  --old:#eef1f4; --old-fg:#424a53; --new:#e6f0fb; --new-fg:#0a2f5c; --accent:#0b5cad; --mark:#fff8c5;
  --mark-fg:#4d2d00; --mark-line:#bf8700; }
@media (prefers-color-scheme: dark) { :root { --fg:#e6edf3; --muted:#9da7b3; --bg:#0d1117; --card:#161b22;
  --line:#30363d; --old:#21262d; --old-fg:#c9d1d9; --new:#0f2a4a; --new-fg:#cae8ff; --accent:#58a6ff;
  --mark:#3b2e00; --mark-fg:#f8e3a1; --mark-line:#9e6a03; } }
* { box-sizing: border-box; }
body { margin:0 auto; max-width:52rem; padding:1rem; font:16px/1.5 -apple-system, "Segoe UI", Roboto, sans-serif;
  color:var(--fg); background:var(--bg); overflow-wrap:anywhere; }
h1 { font-size:1.4rem; margin:.2rem 0; } h2 { font-size:1.1rem; margin:0 0 .2rem; }
h3 { font-size:.95rem; margin:.8rem 0 .2rem; }
a { color:var(--accent); }
.meta, .copies { color:var(--muted); font-size:.9rem; }
.registry { display:inline-block; font-size:.75rem; padding:0 .4rem; border-radius:.25rem; color:var(--muted);
  border:1px solid var(--line); white-space:nowrap; }
.summary { font-weight:600; padding:.6rem .8rem; background:var(--card); border-radius:.4rem; }
section.trial, section.failures, nav.overview { border:1px solid var(--line); border-radius:.5rem; padding:.8rem;
  margin:1rem 0; }
nav.overview h2 { margin-bottom:.4rem; }
nav.overview ol { list-style:none; margin:0; padding:0; }
nav.overview li { display:grid; grid-template-columns:11rem minmax(0,1fr); gap:0 .8rem; padding:.35rem 0;
  border-top:1px solid var(--line); }
nav.overview li:first-child { border-top:0; }
nav.overview .ov-title { color:var(--muted); font-size:.9rem; }
nav.overview .ov-what { grid-column:2; font-size:.9rem; }
.trial-title { margin:.1rem 0 .3rem; }
.copies { margin:0 0 .6rem; }
.change { border-top:1px solid var(--line); padding:.5rem 0; }
.change:first-of-type { border-top:0; }
.sig { display:inline-block; font-size:.75rem; font-weight:700; text-transform:uppercase; letter-spacing:.03em;
  padding:0 .4rem; border-radius:.25rem; background:var(--card); border:1px solid var(--line); }
.sig-status, .sig-outcomes { background:var(--mark); color:var(--mark-fg); border-color:var(--mark-line); }
.field { font-weight:600; } .when { color:var(--muted); font-size:.8rem; white-space:nowrap; }
.values { display:grid; grid-template-columns:minmax(0,1fr) auto minmax(0,1fr); gap:.4rem; align-items:start;
  margin-top:.3rem; }
.old, .new { padding:.3rem .5rem; border-radius:.3rem; white-space:pre-wrap; }
.old { background:var(--old); color:var(--old-fg); } .new { background:var(--new); color:var(--new-fg);
  box-shadow:inset 3px 0 0 var(--accent); }
.arrow { padding-top:.3rem; color:var(--muted); }
del { background:var(--old); color:var(--old-fg); } ins { background:var(--new); color:var(--new-fg);
  text-decoration:none; }
.words { margin-top:.3rem; padding:.3rem .5rem; background:var(--card); border-radius:.3rem; }
ul.items { margin:.3rem 0 0; padding-left:1.2rem; } ul.items li.removed { text-decoration:line-through; }
ul.items li.added::marker { content:"+ "; } ul.items li.removed::marker { content:"− "; }
ul.events { margin:.2rem 0 0; padding-left:1.2rem; } ul.events li { padding:.2rem 0; }
.state { font-weight:600; }
@media (max-width: 36rem) { body { padding:.6rem; font-size:15px; }
  .values { grid-template-columns:1fr; } .arrow { display:none; }
  .old::before { content:"was: "; font-weight:600; } .new::before { content:"now: "; font-weight:600; }
  nav.overview li { grid-template-columns:1fr; } nav.overview .ov-what { grid-column:1; } }
"""


def render_html(report: Report) -> str:
    title = escape(report.title)
    anchors = _anchors(report.groups)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{title}</h1>",
        f'<p class="meta">Generated {escape(report.generated_at)}'
        + (f" · {escape(report.since)}" if report.since else "")
        + "</p>",
        f'<p class="summary">{escape(report.summary())}</p>',
        "</header>",
        "<main>",
    ]
    if report.groups:
        parts.append(_overview(report.groups, anchors))
    for group, anchor in zip(report.groups, anchors):
        parts.append(_group(group, anchor))
    if report.failures:
        parts.append(_failures(report.failures))
    parts += ["</main>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _anchors(groups: list[TrialGroup]) -> list[str]:
    """One fragment id per trial card: its position and its ID reduced to safe characters."""
    return [f"t{i}-{_UNSAFE.sub('-', g.trial_id)[:60]}" for i, g in enumerate(groups, 1)]


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _overview(groups: list[TrialGroup], anchors: list[str]) -> str:
    """Every trial on one line each, most significant first, linked to its card."""
    out = ['<nav class="overview" aria-label="Overview">', "<h2>Overview</h2>", "<ol>"]
    for group, anchor in zip(groups, anchors):
        out.append(
            f'<li><a class="ov-id" href="#{anchor}">{escape(group.trial_id)}</a>'
            f'<span class="ov-title">{escape(group.title or "")}</span>'
            f'<span class="ov-what">{escape(group.what_changed())}</span></li>'
        )
    out += ["</ol>", "</nav>"]
    return "\n".join(out)


def _group(group: TrialGroup, anchor: str) -> str:
    copies = " · ".join(
        f'<a href="{escape(c.url)}">{escape(c.registry)}'
        + (f" {escape(c.trial_id)}" if c.trial_id != group.trial_id else "")
        + "</a>"
        for c in group.copies
    )
    out = [
        f'<section class="trial" id="{anchor}">',
        f'<h2><a href="{escape(group.url)}">{escape(group.trial_id)}</a></h2>',
    ]
    if group.title:
        out.append(f'<p class="trial-title">{escape(group.title)}</p>')
    out.append(f'<p class="copies">{copies}</p>')
    out += [change_html(c, group.copy_label(c)) for c in group.edits]
    if group.events:
        out += ["<h3>Discrepancies and flags</h3>", '<ul class="events">']
        out += [f"<li>{event_html(e, group.copy_label(e))}</li>" for e in group.events]
        out.append("</ul>")
    out.append("</section>")
    return "\n".join(out)


def event_html(e: ChangeLine, registry: str = "") -> str:
    """A discrepancy or flag on one line: kind, field, raised or resolved, its summary."""
    text = (
        f'<span class="field">{escape(e.kind_label)} · {escape(e.label)}</span>: '
        f'<span class="state">{escape(e.state)}</span>'
        + (f" — {escape(e.summary)}" if e.summary else "")
    )
    if registry:
        text += f' <span class="registry">{escape(registry)}</span>'
    return text + f' <span class="when">{escape(e.detected_at)}</span>'


def change_html(c: ChangeLine, registry: str = "") -> str:
    """One change as an HTML fragment (also the content of an Atom entry)."""
    if c.is_event:
        return f'<div class="change">{event_html(c, registry)}</div>'
    sig = escape(c.significance)
    head = (
        f'<div class="change"><span class="sig sig-{sig}">{sig}</span> '
        f'<span class="field">{escape(c.label)}</span>'
        + (f' <span class="registry">{escape(registry)}</span>' if registry else "")
        + (" (backfilled history)" if c.row.get("backfilled") else "")
        + f' <span class="when">{escape(c.when)}</span>'
    )
    if c.added is not None:
        items = [f'<li class="added"><ins>{escape(i)}</ins></li>' for i in c.added]
        items += [f'<li class="removed"><del>{escape(i)}</del></li>' for i in c.removed or []]
        body = f'<ul class="items">{"".join(items) or "<li>(reordered)</li>"}</ul>'
    elif c.words is not None:
        spans = []
        for w in c.words:
            text = escape(w.text)
            spans.append({"same": text, "gap": "…", "del": f"<del>{text}</del>", "ins": f"<ins>{text}</ins>"}[w.op])
        body = f'<div class="words">{" ".join(spans)}</div>'
    else:
        body = (
            f'<div class="values"><div class="old">{escape(c.old_text)}</div>'
            f'<div class="arrow" aria-hidden="true">→</div><div class="new">{escape(c.new_text)}</div></div>'
        )
    return head + body + "</div>"


def _failures(failures: list[FailureLine]) -> str:
    out = ['<section class="failures">', "<h2>Fetch failures</h2>", "<ul>"]
    for f in failures:
        r = f.row
        out.append(
            f'<li><a href="{escape(f.url)}">{escape(r["trial_id"])}</a> ({escape(f.registry)}): '
            f'{escape(f.describe())} <span class="when">{escape(r["detected_at"])}</span></li>'
        )
    out += ["</ul>", "</section>"]
    return "\n".join(out)
