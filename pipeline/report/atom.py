"""The Atom 1.0 feed: subscribe to a watchlist's changes in any feed reader (pure).

One entry per trial with changes in the report (all its registries' changes, its
discrepancies and flags) and one per failure event.  Entry
ids are built from the stored row ids, so the same report rendered twice gives the
same ids and a reader never shows an entry twice.  The document is built with
ElementTree, which escapes every value; characters XML forbids (control characters
a registry page may carry) are dropped first.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from urllib.parse import quote

from pipeline.report.html import change_html
from pipeline.report.model import Report, TrialGroup

ATOM_NS = "http://www.w3.org/2005/Atom"
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold."""
    return _XML_INVALID.sub("", text)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", {k: xml_text(v) for k, v in attrs.items()})
    if text is not None:
        el.text = xml_text(text)
    return el


def render_atom(report: Report, *, feed_id: str) -> str:
    ET.register_namespace("", ATOM_NS)
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    _sub(feed, "id", feed_id)
    _sub(feed, "title", report.title)
    _sub(feed, "subtitle", report.summary())
    stamps = [g.updated for g in report.groups] + [f.row["detected_at"] for f in report.failures]
    _sub(feed, "updated", max(stamps) if stamps else report.generated_at)
    author = _sub(feed, "author")
    _sub(author, "name", "trialwatch")
    _sub(feed, "generator", "trialwatch")
    for group in report.groups:
        _entry(feed, group, feed_id)
    for f in report.failures:
        r = f.row
        entry = _sub(feed, "entry")
        if r["id"] is not None:
            _sub(entry, "id", f"{feed_id}:failure:{r['id']}")
        else:  # still failing: one entry per trial and streak length
            _sub(entry, "id", f"{feed_id}:failing:{r['source']}:{r['trial_id']}:{r['streak']}")
        _sub(entry, "title", f"{r['trial_id']} ({f.registry}): {f.describe()}")
        _sub(entry, "updated", r["detected_at"])
        _sub(entry, "link", rel="alternate", href=f.url)
        _sub(entry, "summary", f.describe())
    ET.indent(feed)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="unicode") + "\n"


def _entry(feed: ET.Element, group: TrialGroup, feed_id: str) -> None:
    ids = [c.id for c in group.changes]
    entry = _sub(feed, "entry")
    _sub(entry, "id", f"{feed_id}:trial:{quote(group.key, safe='')}:changes:{min(ids)}-{max(ids)}")
    title = f"{group.trial_id}: {group.what_changed()}"
    if group.title:
        title += f" · {group.title}"
    _sub(entry, "title", title)
    _sub(entry, "updated", group.updated)
    for i, copy in enumerate(c for c in group.copies if c.url):
        _sub(entry, "link", rel="alternate" if i == 0 else "related", href=copy.url)
    registries = ", ".join(dict.fromkeys(c.registry for c in group.copies))
    _sub(entry, "summary", f"{group.summary()} on {registries}")
    # type="html": the HTML is a string that ElementTree escapes once more, as Atom requires.
    _sub(entry, "content", "\n".join(change_html(c, group.copy_label(c)) for c in group.changes), type="html")
