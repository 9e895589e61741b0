"""The HTML report: one self-contained file for a browser or a phone (pure).

No external assets: the CSS is inline, there are no scripts, fonts or images, so
the file reads the same from a mail client, a download folder or offline.  Every
value that came from a registry (titles, field values, errors) passes through
:func:`html.escape`; a title holding ``<script>`` shows as that text.
"""

from __future__ import annotations

from html import escape

from pipeline.report.model import ChangeLine, FailureLine, Report, TrialGroup

CSS = """
:root { color-scheme: light dark; --fg:#1d232a; --muted:#5b6670; --bg:#fff; --card:#f6f8fa; --line:#d8dee4;
  --del:#ffebe9; --del-fg:#82071e; --ins:#dafbe1; --ins-fg:#116329; --accent:#0b5cad; }
@media (prefers-color-scheme: dark) { :root { --fg:#e6edf3; --muted:#9aa6b2; --bg:#0d1117; --card:#161b22;
  --line:#30363d; --del:#4b1a1f; --del-fg:#ffb3ad; --ins:#163a22; --ins-fg:#9be9a8; --accent:#58a6ff; } }
* { box-sizing: border-box; }
body { margin:0 auto; max-width:52rem; padding:1rem; font:16px/1.5 -apple-system, "Segoe UI", Roboto, sans-serif;
  color:var(--fg); background:var(--bg); overflow-wrap:anywhere; }
h1 { font-size:1.4rem; margin:.2rem 0; } h2 { font-size:1.1rem; margin:0 0 .2rem; }
a { color:var(--accent); }
.meta, .registry { color:var(--muted); font-size:.9rem; }
.summary { font-weight:600; padding:.6rem .8rem; background:var(--card); border-radius:.4rem; }
section.trial, section.failures { border:1px solid var(--line); border-radius:.5rem; padding:.8rem; margin:1rem 0; }
.trial-title { margin:.1rem 0 .6rem; }
.change { border-top:1px solid var(--line); padding:.5rem 0; }
.change:first-of-type { border-top:0; }
.sig { display:inline-block; font-size:.75rem; font-weight:700; text-transform:uppercase; letter-spacing:.03em;
  padding:0 .4rem; border-radius:.25rem; background:var(--card); border:1px solid var(--line); }
.sig-status, .sig-outcomes { background:#fff8c5; color:#4d2d00; border-color:#d4a72c; }
.field { font-weight:600; } .when { color:var(--muted); font-size:.8rem; }
.values { display:grid; grid-template-columns:minmax(0,1fr) auto minmax(0,1fr); gap:.4rem; align-items:start;
  margin-top:.3rem; }
.old, .new { padding:.3rem .5rem; border-radius:.3rem; white-space:pre-wrap; }
.old { background:var(--del); color:var(--del-fg); } .new { background:var(--ins); color:var(--ins-fg); }
.arrow { padding-top:.3rem; color:var(--muted); }
del { background:var(--del); color:var(--del-fg); } ins { background:var(--ins); color:var(--ins-fg);
  text-decoration:none; }
.words { margin-top:.3rem; padding:.3rem .5rem; background:var(--card); border-radius:.3rem; }
ul.items { margin:.3rem 0 0; padding-left:1.2rem; } ul.items li.removed { text-decoration:line-through; }
@media (max-width: 36rem) { body { padding:.6rem; font-size:15px; }
  .values { grid-template-columns:1fr; } .arrow { display:none; }
  .old::before { content:"was: "; font-weight:600; } .new::before { content:"now: "; font-weight:600; } }
"""


def render_html(report: Report) -> str:
    title = escape(report.title)
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
    for group in report.groups:
        parts.append(_group(group))
    if report.failures:
        parts.append(_failures(report.failures))
    parts += ["</main>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _group(group: TrialGroup) -> str:
    out = [
        '<section class="trial">',
        f'<h2><a href="{escape(group.url)}">{escape(group.trial_id)}</a> '
        f'<span class="registry">{escape(group.registry)}</span></h2>',
    ]
    if group.title:
        out.append(f'<p class="trial-title">{escape(group.title)}</p>')
    out += [change_html(c) for c in group.changes]
    out.append("</section>")
    return "\n".join(out)


def change_html(c: ChangeLine) -> str:
    """One change as an HTML fragment (also the content of an Atom entry)."""
    sig = escape(c.significance)
    head = (
        f'<div class="change"><span class="sig sig-{sig}">{sig}</span> '
        f'<span class="field">{escape(c.label)}</span>'
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
            f'<li><a href="{escape(f.url)}">{escape(r["trial_id"])}</a> ({escape(r["source"])}): '
            f'{escape(f.describe())} <span class="when">{escape(r["detected_at"])}</span></li>'
        )
    out += ["</ul>", "</section>"]
    return "\n".join(out)
