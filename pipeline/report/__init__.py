"""Change-alert reports: one model (:mod:`.model`), one pure renderer per format.

``render(report, fmt)`` returns the report as text in one of :data:`FORMATS`; the
report command, the folder channel and the e-mail channel all go through it.
"""

from __future__ import annotations

from pipeline.report.model import Report, build_report, registry_url

FORMATS = ("text", "markdown", "html", "json", "csv", "atom")

#: File extension and MIME type of each format.
FILE_TYPES = {
    "text": ("txt", "text/plain"),
    "markdown": ("md", "text/markdown"),
    "html": ("html", "text/html"),
    "json": ("json", "application/json"),
    "csv": ("csv", "text/csv"),
    "atom": ("atom", "application/atom+xml"),
}


def render(report: Report, fmt: str, *, feed_id: str = "urn:trialwatch:feed") -> str:
    """The report in format ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "text":
        from pipeline.report.text import render_text

        return render_text(report)
    if fmt == "markdown":
        from pipeline.report.markdown import render_markdown

        return render_markdown(report)
    if fmt == "html":
        from pipeline.report.html import render_html

        return render_html(report)
    if fmt == "json":
        from pipeline.report.data import render_json

        return render_json(report)
    if fmt == "csv":
        from pipeline.report.data import render_csv

        return render_csv(report)
    if fmt == "atom":
        from pipeline.report.atom import render_atom

        return render_atom(report, feed_id=feed_id)
    raise ValueError(f"unknown report format {fmt!r} (known: {', '.join(FORMATS)})")


__all__ = ["FORMATS", "FILE_TYPES", "Report", "build_report", "registry_url", "render"]
