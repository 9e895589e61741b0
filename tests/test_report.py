"""Reports: every format from the same stored changes, escaping, Atom parsed back, --since last."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from alert_support import LONG_NEW, populate, record, save
from pipeline.cli import cli
from pipeline.report import FORMATS, render
from pipeline.report.load import load_report
from pipeline.report.model import word_diff
from pipeline.report.window import Since, parse_since
from pipeline.store import Store

ATOM = "{http://www.w3.org/2005/Atom}"
HOSTILE = "<script>alert('x')</script> & friends"


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "t.db")
    populate(s)
    s.note_failure_streaks(3)
    yield s
    s.close()


def _report(store, **kw):
    return load_report(store, Since(last=True), generated_at="2026-11-25T12:00:00Z", **kw).report


def test_grouped_by_trial_most_significant_first(store):
    report = _report(store)
    assert [g.trial_id for g in report.groups] == ["NCT01000001", "NCT01000002", "ChiCTR2100045397"]
    first = report.groups[0]
    assert [c.field for c in first.changes] == ["recruitment_status", "target_size", "public_title"]
    assert first.changes[0].old_text == "Recruiting" and first.changes[0].new_text == "Completed"
    assert first.url == "https://clinicaltrials.gov/study/NCT01000001"
    assert report.groups[2].url == "https://trialsearch.who.int/Trial2.aspx?TrialID=ChiCTR2100045397"
    assert report.summary() == "6 changes in 3 trials (status 1, enrollment 1, eligibility 1, sites 1, other 2)"


def test_backfilled_history_only_when_asked(store):
    assert "NCT01000003" not in {g.trial_id for g in _report(store).groups}
    report = _report(store, include_backfilled=True)
    (group,) = [g for g in report.groups if g.trial_id == "NCT01000003"]
    assert group.changes[0].row["backfilled"] is True


def test_word_diff_of_long_text(store):
    (criteria,) = [c for c in _report(store).change_lines if c.field == "inclusion_criteria"]
    ops = [(w.op, w.text) for w in criteria.words]
    assert ("del", "65") in ops and ("ins", "75") in ops and ("del", "six") in ops and ("ins", "twelve") in ops
    # unchanged stretches are shortened, the edits keep their context
    assert ("gap", "…") in ops
    words = [f"w{i}" for i in range(30)]
    ops = word_diff(" ".join(["old", *words]), " ".join(["new", *words]))
    assert [(w.op, w.text) for w in ops] == [
        ("del", "old"), ("ins", "new"), ("same", " ".join(words[:8])), ("gap", "…")
    ]


def test_every_format_carries_the_same_changes(store):
    report = _report(store)
    ids = [c.id for c in report.change_lines]
    out = {fmt: render(report, fmt, feed_id="urn:trialwatch:test") for fmt in FORMATS}

    doc = json.loads(out["json"])
    assert [r["id"] for r in doc["changes"]] == ids
    assert doc["summary"]["changes"] == 6 and doc["summary"]["trials"] == 3
    from pipeline.cli.core import change_json

    public = set(change_json(report.change_lines[0].row))
    assert all(public <= set(r) for r in doc["changes"])

    rows = list(csv.DictReader(io.StringIO(out["csv"])))
    assert [int(r["id"]) for r in rows] == ids
    assert [(r["trial_id"], r["field"]) for r in rows] == [(c["trial_id"], c["field"]) for c in doc["changes"]]
    assert json.loads(rows[[r["field"] for r in rows].index("countries")]["added"]) == ["Japan"]

    for fmt in ("text", "markdown", "html"):
        for group in report.groups:
            assert group.trial_id in out[fmt] and group.url in out[fmt], fmt
        assert report.summary() in out[fmt].replace("&amp;", "&"), fmt
    assert out["text"].startswith("trialwatch report (since the last report)\n")
    assert doc["title"] == "trialwatch report" and "<title>trialwatch report</title>" in out["html"]
    assert "Recruiting -> Completed" in out["text"]
    assert "[-65-] {+75+}" in out["text"]


def test_failures_have_their_own_section(tmp_path):
    store = Store(tmp_path / "t.db")
    a0 = record("NCT01000001")
    save(store, None, a0)
    save(store, a0, record("NCT01000001", recruitment_status="completed"))
    from alert_support import fail

    for _ in range(3):
        fail(store, "NCT01000009", error="HTTP 503 from registry")
    store.note_failure_streaks(3)
    report = _report(store)
    assert [f.row["trial_id"] for f in report.failures] == ["NCT01000009"]
    assert all(c.row["trial_id"] != "NCT01000009" for c in report.change_lines)
    text = render(report, "text")
    changes_part, failures_part = text.split("Fetch failures")
    assert "NCT01000009" not in changes_part and "failed 3 runs in a row" in failures_part
    assert "1 trial failing" in report.summary()


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text, self.external = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src",) or (tag == "link" and name == "href"):
                self.external.append(value)

    def handle_data(self, data):
        self.text.append(data)


def test_html_is_self_contained_and_escapes_registry_values(store):
    html = render(_report(store), "html")
    parser = _Tags()
    parser.feed(html)
    assert "script" not in parser.tags  # the hostile title is text, not an element
    assert HOSTILE in "".join(parser.text)
    assert "&lt;script&gt;" in html
    assert parser.external == [] and "@import" not in html and "url(" not in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "<style>" in html and "@media (max-width" in html


def test_markdown_escapes_registry_values(store):
    md = render(_report(store), "markdown")
    assert "<script>" not in md and r"\<script\>" in md


def test_atom_feed_parses_back(store):
    report = _report(store)
    xml = render(report, "atom", feed_id="urn:trialwatch:test")
    feed = ET.fromstring(xml.encode("utf-8"))
    assert feed.tag == f"{ATOM}feed"
    assert feed.find(f"{ATOM}id").text == "urn:trialwatch:test"
    assert feed.find(f"{ATOM}title").text
    assert feed.find(f"{ATOM}updated").text == max(g.updated for g in report.groups)
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == len(report.groups)
    ids = [e.find(f"{ATOM}id").text for e in entries]
    assert len(set(ids)) == len(ids)
    for entry, group in zip(entries, report.groups):
        assert entry.find(f"{ATOM}link").get("href") == group.url
        assert entry.find(f"{ATOM}updated").text == group.updated
        assert group.trial_id in entry.find(f"{ATOM}title").text
    first = entries[0]
    assert HOSTILE in first.find(f"{ATOM}title").text  # escaped in XML, itself once parsed
    content = first.find(f"{ATOM}content")
    assert content.get("type") == "html" and "&lt;script&gt;" in content.text
    # the same report renders the same entry ids: a reader never shows an entry twice
    assert xml == render(report, "atom", feed_id="urn:trialwatch:test")


def test_atom_drops_characters_xml_cannot_hold(tmp_path):
    store = Store(tmp_path / "t.db")
    a0 = record("NCT01000001")
    save(store, None, a0)
    save(store, a0, record("NCT01000001", public_title="bad \x0b\x01 title"))
    ET.fromstring(render(_report(store), "atom", feed_id="urn:x").encode())


@pytest.fixture
def app(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[database]\npath = "t.db"\n[watch]\ntrials = ["NCT01000001"]\n')
    store = Store(tmp_path / "t.db")
    populate(store)
    store.close()
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        return result

    run.tmp = tmp_path
    return run


def test_since_last_is_idempotent(app):
    first = app("report", "--since", "last", "--format", "json")
    assert first.exit_code == 0
    assert json.loads(first.output)["summary"]["changes"] == 6
    second = app("report", "--since", "last", "--format", "json")
    assert json.loads(second.output)["changes"] == []
    assert "no changes" in app("report", "--since", "last").output

    # a new change is reported once, alone
    store = Store(app.tmp / "t.db")
    a1 = store.load_state("NCT01000001", "ctgov").record
    save(store, a1, {**a1, "target_size": 150})
    store.close()
    peek = app("report", "--peek", "--format", "json")
    assert [c["new"] for c in json.loads(peek.output)["changes"]] == [150]
    third = app("report", "--format", "json")  # --since last is the default
    assert [c["new"] for c in json.loads(third.output)["changes"]] == [150]
    assert json.loads(app("report", "--format", "json").output)["changes"] == []


def test_report_by_date_does_not_move_the_cursor(app):
    assert json.loads(app("report", "--since", "7d", "--format", "json").output)["summary"]["changes"] == 6
    assert json.loads(app("report", "--since", "2000-01-01", "--format", "json").output)["summary"]["changes"] == 6
    assert json.loads(app("report", "--format", "json").output)["summary"]["changes"] == 6


def test_report_out_file_and_bad_since(app):
    out = app.tmp / "r" / "report.html"
    result = app("report", "--format", "html", "--out", str(out))
    assert result.exit_code == 0 and out.read_text().startswith("<!DOCTYPE html>")
    bad = app("report", "--since", "someday")
    assert bad.exit_code == 2 and "--since" in bad.output


def test_long_text_renders_whole_new_value_in_json(store):
    doc = json.loads(render(_report(store), "json"))
    (row,) = [r for r in doc["changes"] if r["field"] == "inclusion_criteria"]
    assert row["new"] == LONG_NEW


def test_failures_reported_once_by_cursor_and_while_they_last_by_window(tmp_path):
    from alert_support import fail

    store = Store(tmp_path / "t.db")
    save(store, None, record("NCT01000009"))
    for _ in range(4):
        fail(store, "NCT01000009", error="HTTP 503")
    store.note_failure_streaks(3)

    def failures(since):
        loaded = load_report(store, since, generated_at="2026-11-25T12:00:00Z", failure_alert_after=3)
        if since.last:
            store.set_report_cursor(loaded.upto_change, loaded.upto_failure)
        return [(f.row["kind"], f.row["streak"]) for f in loaded.report.failures]

    assert failures(Since(last=True)) == [("failing", 4)]
    assert failures(Since(last=True)) == []  # not new any more
    assert failures(Since(at="2000-01-01T00:00:00Z")) == [("failing", 4)]  # the event is in the window
    later = load_report(store, Since(at="2999-01-01T00:00:00Z"), generated_at="2026-11-25T12:00:00Z").report
    assert [(f.row["kind"], f.row["streak"]) for f in later.failures] == [("still_failing", 4)]
    assert "still failing: 4 runs in a row; last error: HTTP 503" in render(later, "text")
    assert "1 trial failing" in later.summary()
    feed = ET.fromstring(render(later, "atom", feed_id="urn:x").encode())
    assert [e.find(f"{ATOM}id").text for e in feed.findall(f"{ATOM}entry")] == ["urn:x:failing:ctgov:NCT01000009:4"]
    store.close()


@pytest.mark.parametrize("fault", [{"kind": "script_title"}, {"kind": "control_chars", "mode": "escaped"}],
                         ids=["script", "control-chars"])
def test_hostile_registry_titles_end_to_end(tmp_path, fault):
    """A registry serves a hostile title: refresh stores it, HTML shows it as text, Atom stays XML."""
    from pipeline.config import parse_config
    from pipeline.refresh import refresh
    from pipeline.simulator.corpus import Corpus
    from pipeline.simulator.faults import SCRIPT_TITLE
    from pipeline.simulator.server import SimulatorServer

    corpus = Corpus(size=2, seed=7)
    trial = corpus.ids[0]
    with SimulatorServer(corpus) as server:
        config = parse_config({
            "database": {"path": str(tmp_path / "t.db")},
            "sources": {"ctgov": {"base_url": server.ctgov_url, "requests_per_second": 50, "retries": 0},
                        "who": {"enabled": False}},
            "watch": {"trials": [trial]},
        })
        store = Store(config.database_path)
        refresh(config, store)
        server.add_fault({"match": "/api/v2/studies", **fault})
        refresh(config, store)
    report = load_report(store, Since(last=True), generated_at="2026-11-25T12:00:00Z").report
    title_changes = [c for c in report.change_lines if c.field == "public_title"]
    assert title_changes, "the hostile title was not recorded as a change"
    html = render(report, "html")
    parser = _Tags()
    parser.feed(html)
    assert "script" not in parser.tags
    if fault["kind"] == "script_title":
        assert SCRIPT_TITLE in "".join(parser.text)
    ET.fromstring(render(report, "atom", feed_id="urn:x").encode("utf-8"))
    assert json.loads(render(report, "json"))["changes"][0]["new"] == title_changes[0].row["new"]  # lossless
    if fault["kind"] == "control_chars":
        assert "\x1b" in title_changes[0].row["new"]  # stored as the registry gave it ...
        for fmt in ("text", "markdown", "html", "csv"):
            out = render(report, fmt)
            assert "\x1b" not in out and "\x00" not in out, fmt  # ... never replayed to a terminal
    store.close()


# -- the trial as the unit (issue 10) ------------------------------------------------------------

HOSTILE_SUMMARY = "<script>x</script> *bold* [link](http://evil.example) \x1b[2J"
FORMULA_SUMMARY = "=HYPERLINK(\"http://evil.example\")"


@pytest.fixture
def copies(tmp_path):
    """NCT01000001 changed on ClinicalTrials.gov and on its WHO copy; a discrepancy between the two
    raised, a flag raised with a hostile summary, another flag resolved; a second trial on WHO only."""
    from alert_support import event

    s = Store(tmp_path / "t.db")
    a0, w0 = record("NCT01000001"), record("NCT01000001", "who")
    b0 = record("ChiCTR2100045397", "who")
    for r in (a0, w0, b0):
        save(s, None, r)
    save(s, a0, record("NCT01000001", recruitment_status="active_not_recruiting", target_size=120))
    save(s, w0, record("NCT01000001", "who", target_size=120))
    save(s, b0, record("ChiCTR2100045397", "who", recruitment_status="not_recruiting"))
    event(s, "NCT01000001", "who", "discrepancy", "recruitment_status",
          "the WHO copy, last refreshed 2020-12-12, says Recruiting; ClinicalTrials.gov has said "
          "Active, not recruiting since 2026-11-30")
    event(s, "NCT01000001", "ctgov", "flag", "results_overdue", HOSTILE_SUMMARY, significance="results")
    event(s, "NCT01000001", "ctgov", "flag", "stale_status", FORMULA_SUMMARY, resolved=True,
          significance="not-a-known-significance")
    yield s
    s.close()


def test_a_trial_and_its_who_copy_are_one_trial(copies):
    report = _report(copies)
    assert [g.trial_id for g in report.groups] == ["NCT01000001", "ChiCTR2100045397"]
    nct = report.groups[0]
    assert [(c.source, c.url) for c in nct.copies] == [
        ("ctgov", "https://clinicaltrials.gov/study/NCT01000001"),
        ("who", "https://trialsearch.who.int/Trial2.aspx?TrialID=NCT01000001"),
    ]
    # each change names its registry (the Source's label), ClinicalTrials.gov first at equal rank
    assert [(c.field, c.registry) for c in nct.edits] == [
        ("recruitment_status", "ClinicalTrials.gov"), ("target_size", "ClinicalTrials.gov"), ("target_size", "WHO ICTRP"),
    ]
    assert [(c.kind, c.field, c.state) for c in nct.events] == [
        ("discrepancy", "recruitment_status", "raised"), ("flag", "results_overdue", "raised"),
        ("flag", "stale_status", "resolved"),
    ]
    # trials are counted once, whatever their registries; events apart from changes
    assert report.summary() == "4 changes in 2 trials (status 2, enrollment 2); 1 discrepancy, 2 flags"
    out = {fmt: render(report, fmt, feed_id="urn:x") for fmt in FORMATS}
    doc = json.loads(out["json"])
    assert doc["summary"] | {"text": None} == {
        "text": None, "changes": 4, "trials": 2, "by_significance": {"status": 2, "enrollment": 2},
        "events": {"discrepancy": 1, "flag": 2}, "failures": 0,
    }
    assert {(r["trial"], r["trial_id"], r["source"], r["registry"]) for r in doc["changes"]} == {
        ("NCT01000001", "NCT01000001", "ctgov", "ClinicalTrials.gov"),
        ("NCT01000001", "NCT01000001", "who", "WHO ICTRP"),
        ("ChiCTR2100045397", "ChiCTR2100045397", "who", "WHO ICTRP"),
    }
    who_row = next(r for r in doc["changes"] if r["source"] == "who" and r["field"] == "target_size")
    assert who_row["url"] == "https://trialsearch.who.int/Trial2.aspx?TrialID=NCT01000001"  # the record's own page
    rows = list(csv.DictReader(io.StringIO(out["csv"])))
    assert [r["id"] for r in rows] == [str(r["id"]) for r in doc["changes"]]
    assert list(rows[0])[-3:] == ["trial", "registry", "description"]  # new columns last
    text = out["text"]
    assert text.count("\nNCT01000001  ") == 1  # one block, not one per copy
    assert "[status] Recruitment status · ClinicalTrials.gov" in text
    assert "[enrollment] Target size · WHO ICTRP" in text
    assert "Recruiting -> Active, not recruiting" in text and "active_not_recruiting" not in text
    assert out["markdown"].count("\n## ") == 2 and "_WHO ICTRP_" in out["markdown"]
    assert out["html"].count('<section class="trial"') == 2
    feed = ET.fromstring(out["atom"].encode())
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == 2
    links = [(link.get("rel"), link.get("href")) for link in entries[0].findall(f"{ATOM}link")]
    assert links == [("alternate", nct.copies[0].url), ("related", nct.copies[1].url)]


def test_discrepancies_and_flags_read_as_one_line_in_every_format(copies):
    report = _report(copies)
    out = {fmt: render(report, fmt, feed_id="urn:x") for fmt in FORMATS}
    text = out["text"]
    events_part = text.split("Discrepancies and flags")[1].split("\nChiCTR")[0]
    assert "Discrepancy · Recruitment status: raised — the WHO copy, last refreshed 2020-12-12" in text
    assert "Flag · Results overdue: raised — <script>x</script>" in events_part  # text is text ...
    assert "Flag · Stale status: resolved — =HYPERLINK" in events_part
    assert "\x1b" not in text  # ... but never replays a terminal escape
    html = out["html"]
    parser = _Tags()
    parser.feed(html)
    assert "script" not in parser.tags and "&lt;script&gt;x&lt;/script&gt;" in html
    card = html.split('<section class="trial"')[1]
    assert "<h3>Discrepancies and flags</h3>" in card and '<span class="state">resolved</span>' in card
    md = out["markdown"]
    assert "**Discrepancies and flags**" in md and "\\<script\\>" in md and "\\[link\\]\\(http" in md
    assert "](http://evil.example)" not in md
    for fmt in ("text", "markdown", "html", "csv"):
        assert "\x1b" not in out[fmt], fmt
    rows = list(csv.DictReader(io.StringIO(out["csv"])))
    flag = next(r for r in rows if r["field"] == "stale_status")
    assert flag["kind"] == "flag" and flag["description"].startswith("Flag · Stale status: resolved")
    assert json.loads(flag["old"])["summary"] == FORMULA_SUMMARY and flag["new"] == ""
    cells = [v for r in rows for v in r.values() if v]
    assert not [v for v in cells if v[:1] in ("=", "+", "-", "@", "\t", "\r")]
    feed = ET.fromstring(out["atom"].encode())
    content = feed.findall(f"{ATOM}entry")[0].find(f"{ATOM}content").text
    assert "Results overdue" in content and "&lt;script&gt;" in content
    doc = json.loads(out["json"])
    flag = next(r for r in doc["changes"] if r["field"] == "results_overdue")
    assert flag["new"]["summary"] == HOSTILE_SUMMARY  # lossless in JSON


def test_html_opens_with_an_overview_linked_to_each_card(copies):
    report = _report(copies)
    html = render(report, "html")
    overview, cards = html.split("</nav>")
    assert "<h2>Overview</h2>" in overview and html.index("<h2>Overview</h2>") < html.index('<section class="trial"')
    import re

    links = re.findall(r'<a class="ov-id" href="#([^"]+)">([^<]+)</a>', overview)
    anchors = re.findall(r'<section class="trial" id="([^"]+)">', cards)
    assert [t for _, t in links] == [g.trial_id for g in report.groups]  # most significant first
    assert [a for a, _ in links] == anchors and len(set(anchors)) == len(anchors)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", a) for a in anchors)
    first = overview.split("<li>")[1]
    assert "Trial NCT01000001" in first  # the title
    assert "Recruitment status (Recruiting → Active, not recruiting)" in first and "Target size" in first
    assert "1 discrepancy (Recruitment status)" in first and "2 flags (Results overdue, Stale status)" in first


def test_trial_keys_join_records_linked_across_registries(copies):
    """A EudraCT record on WHO linked to the NCT trial (the cross-registry links' trial_key_map)."""
    euctr0 = record("EUCTR2020-001234-56-DE", "who")
    save(copies, None, euctr0)
    save(copies, euctr0, record("EUCTR2020-001234-56-DE", "who", target_size=300))
    keys = {("EUCTR2020-001234-56-DE", "who"): "NCT01000001", ("NCT01000001", "ctgov"): "NCT01000001",
            ("NCT01000001", "who"): "NCT01000001"}
    # without the store's map: the EudraCT record is a trial of its own
    assert len(_report(copies).groups) == 3

    class LinkedStore:
        def __init__(self, store):
            self.store = store

        def __getattr__(self, name):
            return getattr(self.store, name)

        def trial_key_map(self):
            return keys

    report = _report(LinkedStore(copies))
    assert [g.key for g in report.groups] == ["NCT01000001", "ChiCTR2100045397"]
    nct = report.groups[0]
    assert [(c.trial_id, c.source) for c in nct.copies][-1] == ("EUCTR2020-001234-56-DE", "who")
    euctr = next(c for c in nct.changes if c.trial_id.startswith("EUCTR"))
    assert nct.copy_label(euctr) == "WHO ICTRP EUCTR2020-001234-56-DE"  # another ID: named
    assert "Target size · WHO ICTRP EUCTR2020-001234-56-DE" in render(report, "text")
    assert report.summary().startswith("5 changes in 2 trials")
    doc = json.loads(render(report, "json"))
    assert {r["trial"] for r in doc["changes"] if r["trial_id"].startswith(("NCT", "EUCTR"))} == {"NCT01000001"}


