"""Report rendering on data alone: the --since parser, colours, status labels, event lines."""

from __future__ import annotations

import json

import pytest

from pipeline.report import render
from pipeline.report.window import Since, parse_since


def test_parse_since():
    from datetime import datetime, timezone

    now = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
    assert parse_since("last", now) == Since(last=True)
    assert parse_since("7d", now).at == "2026-11-18T12:00:00Z"
    assert parse_since("12h", now).at == "2026-11-25T00:00:00Z"
    assert parse_since("2026-11-01", now).at == "2026-11-01T00:00:00Z"
    assert parse_since("2026-11-01T09:00+01:00", now).at == "2026-11-01T08:00:00Z"
    with pytest.raises(ValueError):
        parse_since("yesterday", now)


def test_html_values_in_neutral_colours_with_enough_contrast():
    """Old and new values neither red nor green; every text colour at least 4.5:1 (WCAG AA) on its
    background, in the light and the dark scheme."""
    import colorsys
    import re

    from pipeline.report.html import CSS

    def rgb(h):
        h = h[1:] if len(h) == 7 else "".join(c * 2 for c in h[1:])  # #fff -> ffffff
        return [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)]

    def lum(h):
        return sum(w * (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
                   for w, c in zip((0.2126, 0.7152, 0.0722), rgb(h)))

    def contrast(a, b):
        hi, lo = sorted((lum(a), lum(b)), reverse=True)
        return (hi + 0.05) / (lo + 0.05)

    light, dark = re.findall(r":root \{([^}]*)\}", CSS)
    base = dict(re.findall(r"--([\w-]+):(#[0-9a-fA-F]{6}|#[0-9a-fA-F]{3})\b", light))
    for scheme in (base, {**base, **dict(re.findall(r"--([\w-]+):(#[0-9a-fA-F]{6}|#[0-9a-fA-F]{3})\b", dark))}):
        for fg, bg in (("fg", "bg"), ("fg", "card"), ("muted", "bg"), ("muted", "card"), ("old-fg", "old"),
                       ("new-fg", "new"), ("accent", "bg"), ("mark-fg", "mark")):
            assert contrast(scheme[fg], scheme[bg]) >= 4.5, (fg, bg)
        for name in ("old", "old-fg", "new", "new-fg"):
            h, _, s = colorsys.rgb_to_hls(*rgb(scheme[name]))
            hue = h * 360
            assert s < 0.15 or 180 <= hue <= 260, (name, scheme[name])  # grey or blue: no verdict
    assert "--del" not in CSS and "--ins:" not in CSS


def test_status_codes_read_as_labels_in_reports():
    from pipeline.report.model import build_report

    row = {"id": 1, "trial_id": "NCT01000001", "source": "ctgov", "field": "recruitment_status",
           "old": "recruiting", "new": "active_not_recruiting", "significance": "status", "kind": "field",
           "detected_at": "2026-11-25T00:00:00Z", "backfilled": False}
    report = build_report([row], generated_at="2026-11-25T12:00:00Z")
    for fmt in ("text", "markdown", "html"):
        out = render(report, fmt)
        assert "Active, not recruiting" in out and "active_not_recruiting" not in out, fmt
    doc = json.loads(render(report, "json"))
    assert doc["changes"][0]["new"] == "active_not_recruiting"  # the data keeps the code ...
    assert doc["changes"][0]["description"] == "Recruiting -> Active, not recruiting"  # ... and says it


def test_terminal_changes_show_an_event_as_one_line():
    from pipeline.render_table import describe_change

    flag = {"trial_id": "NCT01000001", "source": "ctgov", "field": "results_overdue", "kind": "flag",
            "old": None, "new": {"summary": "no results \x1b[2J 14 months after completion"}}
    assert describe_change(flag, None).text == "flag raised: no results \\x1b[2J 14 months after completion"
    resolved = {**flag, "kind": "discrepancy", "old": flag["new"], "new": None}
    assert describe_change(resolved, 30).text == "discrepancy resolved: no resu…"
