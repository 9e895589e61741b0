"""Issue 11 items 3, 4 and 5 through the real CLI: output that shows the change, the shared
options, and `history` numbering versions one way.

One simulator corpus (the demo's), refreshed twice with a simulated day between, one
trial backfilled: the live change of that trial is also a registry version.
"""

from __future__ import annotations

import json
import os
import pty
import re
import sqlite3
import struct
import subprocess
import sys
import fcntl
import termios
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.demo import write_demo_config
from pipeline.simulator.corpus import Corpus
from pipeline.simulator.server import SimulatorServer

OLD_TITLE = (
    "Efficacy and Safety of Hydroxychloroquine for Treatment of Pneumonia Caused by 2019-nCoV "
    "( HC-nCoV ): a multicentre, randomised, open-label trial in adults admitted to hospital"
)
NEW_TITLE = OLD_TITLE.replace("Pneumonia Caused by 2019-nCoV", "COVID-19 Pneumonia")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """(config path, corpus): two refreshes, ids[0] backfilled, and one long title change."""
    tmp = tmp_path_factory.mktemp("term")
    corpus = Corpus(size=12, seed=1)
    with SimulatorServer(corpus) as server:
        config = write_demo_config(tmp, server.ctgov_url, server.who_url, corpus.ids[:9])
        run = lambda *a: CliRunner().invoke(cli, ["--config", str(config), *a], catch_exceptions=False)  # noqa: E731
        assert run("refresh", "--no-progress").exit_code == 0
        corpus.advance(days=1)
        assert run("refresh", "--no-progress").exit_code == 0
        assert run("backfill", "--no-progress", corpus.ids[0]).exit_code == 0
    with sqlite3.connect(tmp / "trialwatch-demo.db") as conn:
        conn.execute(
            "INSERT INTO changes (trial_id, source, snapshot_id, run_id, field, old, new, significance, kind,"
            " detected_at, backfilled) VALUES (?, 'ctgov', NULL, NULL, 'public_title', ?, ?, 'other', 'field',"
            " '2026-12-01T00:00:00Z', 0)",
            (corpus.ids[1], json.dumps(OLD_TITLE), json.dumps(NEW_TITLE)),
        )
    return config, corpus


def tw(config, *args, env=None):
    return CliRunner(env=env).invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


def tw_process(config, *args, env_update=None, tty_columns=None):
    """The installed CLI in a subprocess: stdout to a pipe, or to a pseudo-terminal of ``tty_columns``."""
    exe = Path(sys.executable).parent / "trialwatch"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pipeline"]
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm"
    env.update(env_update or {})
    if tty_columns is None:
        done = subprocess.run([*cmd, "--config", str(config), *args], capture_output=True, text=True, env=env,
                              timeout=60)
        return done.returncode, done.stdout
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, tty_columns, 0, 0))
    proc = subprocess.Popen([*cmd, "--config", str(config), *args], stdout=slave, stderr=subprocess.DEVNULL,
                            env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    rc = proc.wait(timeout=60)
    return rc, b"".join(chunks).decode("utf-8").replace("\r\n", "\n")


# -- item 3: terminal output that shows the change -------------------------------------------------


def test_changes_are_cut_around_the_part_that_changed_to_fit_the_width(db):
    config, corpus = db
    out = tw(config, "changes", "--trial", corpus.ids[1]).output
    lines = out.splitlines()
    assert all(len(line) <= 120 for line in lines)  # not a terminal: a fixed, stable width
    (title,) = [line for line in lines if "public_title" in line]
    change = title.split("public_title", 1)[1].strip()
    old, new = change.split(" -> ")
    # both sides cut, with context on each side of the changed words, ellipses at both ends
    assert old.startswith("…") and old.endswith("…") and "Pneumonia Caused" in old
    assert new.startswith("…") and new.endswith("…") and "COVID-19 Pneumonia" in new
    assert "of " in old  # context before the change
    assert "Efficacy" not in change  # not the start of the title: the part that changed
    assert "\x1b" not in out


def test_full_prints_whole_values_on_changes_show_and_history(db):
    config, corpus = db
    full = tw(config, "changes", "--trial", corpus.ids[1], "--full").output
    assert f"{OLD_TITLE} -> {NEW_TITLE}" in full

    record = json.loads(tw(config, "show", corpus.ids[2], "--json").output)
    longest = max((k for k, v in record.items() if isinstance(v, str)), key=lambda k: len(record[k]))
    value = record[longest]
    assert len(value) > 120
    cut = tw(config, "show", corpus.ids[2]).output
    assert all(len(line) <= 120 for line in cut.splitlines()) and value not in cut
    shown = tw(config, "show", corpus.ids[2], "--full").output
    for line in value.splitlines():
        assert line.strip() in shown

    outcome = [c for c in json.loads(tw(config, "changes", "--json", "--trial", corpus.ids[2]).output)
               if c["field"] == "primary_outcomes"][0]
    whole = "; ".join(outcome["added"])
    assert whole not in tw(config, "history", corpus.ids[2]).output
    assert whole in tw(config, "history", corpus.ids[2], "--full").output


def test_colour_and_width_on_a_terminal_plain_text_in_a_pipe(db):
    config, corpus = db
    rc, coloured = tw_process(config, "changes", tty_columns=90)
    # old and new values faint and bold, never red and green (a "terminated" is no good news)
    assert rc == 0 and "\x1b[1m" in coloured and "\x1b[2m" in coloured
    assert "\x1b[31m" not in coloured and "\x1b[32m" not in coloured
    assert max(len(ANSI.sub("", line)) for line in coloured.splitlines()) <= 90
    assert "COVID-19" in ANSI.sub("", coloured)

    rc, no_color = tw_process(config, "changes", tty_columns=90, env_update={"NO_COLOR": "1"})
    assert rc == 0 and "\x1b" not in no_color and no_color == ANSI.sub("", coloured)

    # A pipe: no colour, and the same text whatever the terminal or $COLUMNS says.
    rc, piped = tw_process(config, "changes")
    rc2, piped_narrow = tw_process(config, "changes", env_update={"COLUMNS": "40"})
    assert rc == rc2 == 0 and "\x1b" not in piped and piped == piped_narrow
    assert max(len(line) for line in piped.splitlines()) <= 120


# -- item 4: the same options behave the same everywhere -------------------------------------------


def test_changes_since_accepts_what_report_accepts(db):
    config, corpus = db
    everything = json.loads(tw(config, "changes", "--json").output)
    for since in ("7d", "12h", "2w", "90m", "2000-01-01", "2000-01-01T09:00Z", "last"):
        result = tw(config, "changes", "--json", "--since", since)
        assert result.exit_code == 0, (since, result.output)
    assert json.loads(tw(config, "changes", "--json", "--since", "2000-01-01").output) == everything
    assert json.loads(tw(config, "changes", "--json", "--since", "last").output) == everything  # nothing reported
    assert tw(config, "report", "--since", "last", "--format", "json").exit_code == 0  # moves the cursor
    assert json.loads(tw(config, "changes", "--json", "--since", "last").output) == []
    assert json.loads(tw(config, "changes", "--json", "--since", "2999-01-01").output) == []


@pytest.mark.parametrize("command", [("changes",), ("report", "--format", "json")])
@pytest.mark.parametrize("value", ["yesterday", "99999999d", "7x"])
def test_a_bad_since_is_a_usage_error_naming_the_option_once(db, command, value):
    config, _ = db
    result = tw(config, *command, "--since", value)
    assert result.exit_code == 2
    error = [line for line in result.output.splitlines() if line.startswith("Error")][0]
    assert error.count("--since") == 1 and "Traceback" not in result.output


def test_significance_is_checked_against_the_known_values(db):
    config, _ = db
    bad = tw(config, "changes", "--significance", "stauts")
    assert bad.exit_code == 2 and "no changes" not in bad.output
    assert "'stauts' is not one of" in bad.output and "'status'" in bad.output and "'outcomes'" in bad.output
    rows = json.loads(tw(config, "changes", "--json", "--significance", "STATUS").output)
    assert rows and {r["significance"] for r in rows} == {"status"}


def test_limit_keeps_the_most_recent_and_newest_first_reverses(db):
    config, _ = db
    everything = json.loads(tw(config, "changes", "--json").output)
    assert json.loads(tw(config, "changes", "--json", "--limit", "3").output) == everything[-3:]
    newest = json.loads(tw(config, "changes", "--json", "--limit", "3", "--newest-first").output)
    assert newest == everything[-3:][::-1]
    assert tw(config, "changes", "--limit", "0").exit_code == 2


# -- item 5: history numbers versions one way --------------------------------------------------------

VERSION_LINE = re.compile(r"^  (v\d+)\s+(\S+)  ")


def test_history_numbers_versions_1_to_n_with_one_date_format_and_each_change_once(db):
    config, corpus = db
    nct = corpus.ids[0]
    out = tw(config, "history", nct).output
    assert "registry version" not in out and "version 2" not in out.replace("versions", "")
    sections = re.split(r"^(?=\S)", out, flags=re.M)
    ctgov = next(s for s in sections if s.startswith(f"{nct} on ctgov"))
    who = next(s for s in sections if s.startswith(f"{nct} on who"))
    index = json.loads(tw(config, "history", nct, "--json").output)
    for section, source in ((ctgov, "ctgov"), (who, "who")):
        found = [VERSION_LINE.match(line).groups() for line in section.splitlines() if VERSION_LINE.match(line)]
        assert [v for v, _ in found] == [f"v{i}" for i in range(1, len(found) + 1)]
        assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", day) for _, day in found)
        assert [day for _, day in found] == sorted(day for _, day in found)
        assert f"{len(found)} version" in section.splitlines()[0]
        assert [v["version"] for v in index["versions"] if v["source"] == source] == list(range(1, len(found) + 1))
    # The backfilled chain is every registry version; the live snapshots are two of them.
    backfilled = [v for v in index["versions"] if v["source"] == "ctgov"]
    assert len(backfilled) == len(corpus.history_changes(nct))
    assert sum(len(v["snapshot_ids"]) for v in backfilled) == len(backfilled) + 2
    # The live refresh's change is the newest registry version's: listed once.
    assert ctgov.count("recruitment_status: Recruiting -> Active, not recruiting") == 1
    assert "also fetched" in ctgov
    # Database ids only in --json.
    ids = {str(i) for v in index["versions"] for i in v["snapshot_ids"]}
    listed = set(re.findall(r"\bv?(\d+)\b", " ".join(line.split("  ")[1] for line in out.splitlines()
                                                      if VERSION_LINE.match(line))))
    assert all(f"v{i}" in out for i in range(1, 3))
    assert not {f"version {i}" for i in ids} & set(re.findall(r"version \d+", out))
    assert listed <= {str(i) for i in range(1, len(backfilled) + 1)}
