"""Issue 11 item 8: a trial starting or stopping to match a query watch is news.

Through the real CLI against the registry simulator: the first load of a query records
no query events (it is the baseline); afterwards a trial that starts matching or stops
matching gets one ``query`` change naming the query, shown by ``changes``, ``history``
and every report format, and sent by an alert rule that selects it.
"""

from __future__ import annotations

import csv
import io
import json
import random

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.simulator.corpus import Corpus
from pipeline.simulator.server import SimulatorServer


@pytest.fixture
def sim():
    corpus = Corpus(160, 5, change_rate=0.05)
    with SimulatorServer(corpus) as server:
        yield corpus, server


def recruiting(corpus) -> set[str]:
    return {t.trial_id for t in corpus.trials if t.is_nct and not t.deleted and t.state["status"] == "RECRUITING"}


def test_joining_and_leaving_a_query_are_changes_reports_and_alerts(tmp_path, sim):
    corpus, server = sim
    out = tmp_path / "alerts"
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[database]\npath = "tw.db"\n'
        f'[sources.ctgov]\nbase_url = "{server.ctgov_url}"\nrequests_per_second = 1000\n'
        f'[sources.who]\nbase_url = "{server.who_url}"\nrequests_per_second = 1000\nenabled = false\n'
        f'[[watch.queries]]\nname = "covid-recruiting"\nstatus = ["RECRUITING"]\n'
        f'[[alerts]]\nchannel = "folder"\nname = "new-matches"\npath = "{out}"\nformat = "json"\n'
        f'significance = ["query"]\nqueries = ["covid-recruiting"]\n'
    )
    runner = CliRunner()

    def invoke(*args):
        result = runner.invoke(cli, ["--config", str(cfg), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    invoke("refresh", "--source", "ctgov", "--no-progress")
    before = recruiting(corpus)
    # The first complete load is the baseline: no flood of "joined" events.
    assert [c for c in json.loads(invoke("changes", "--json")) if c["kind"] == "query"] == []
    members = invoke("queries", "--members", "covid-recruiting")
    assert members.splitlines()[0].split()[:2] == ["trial", "title"]
    listed = json.loads(invoke("queries", "--members", "covid-recruiting", "--json"))
    assert {r["trial_id"] for r in listed} == before and all(r["title"] for r in listed)
    invoke("deliver")  # the channel starts after what exists

    # A day on the registry: some trials stop recruiting, some start.
    server.advance(1)
    server.advance(1)
    starter = next(t for t in corpus.trials if t.is_nct and not t.deleted and t.state["status"] == "NOT_YET_RECRUITING")
    assert corpus.apply_change(starter, "status", random.Random(0), to="RECRUITING")
    after = recruiting(corpus)
    left, joined = before - after, after - before
    assert left and joined
    invoke("refresh", "--source", "ctgov", "--no-progress", "--full-sweep")

    events = [c for c in json.loads(invoke("changes", "--json")) if c["kind"] == "query"]
    assert all(c["field"] == "covid-recruiting" and c["significance"] == "query" for c in events)
    gone = {c["trial_id"]: c for c in events if c["new"]["state"] != "member"}
    came = {c["trial_id"]: c for c in events if c["new"]["state"] == "member"}
    assert set(gone) == left and set(came) == joined
    one = next(iter(gone.values()))
    assert one["old"] == {"state": "member"}
    assert one["new"]["summary"].startswith("no longer matches query covid-recruiting")
    for c in came.values():
        assert c["old"] is None and c["new"]["summary"] == "now matches query covid-recruiting"
    assert {r["trial_id"] for r in json.loads(invoke("queries", "--members", "covid-recruiting", "--json"))} == after

    trial = one["trial_id"]
    assert "no longer matches query covid-recruiting" in invoke("changes", "--trial", trial)
    assert "no longer matches query covid-recruiting" in invoke("history", trial)

    # Every report format shows it.
    text = invoke("report", "--since", "7d", "--format", "text")
    assert "Query covid-recruiting" in text and "no longer matches query covid-recruiting" in text
    assert "no longer matches query covid-recruiting" in invoke("report", "--since", "7d", "--format", "markdown")
    assert "no longer matches query covid-recruiting" in invoke("report", "--since", "7d", "--format", "html")
    assert "Query covid-recruiting" in invoke("report", "--since", "7d", "--format", "atom")
    rows = list(csv.DictReader(io.StringIO(invoke("report", "--since", "7d", "--format", "csv"))))
    assert {r["trial_id"] for r in rows if r["kind"] == "query"} == left | joined

    # The alert rule gets the query events, and only those.
    invoke("deliver")
    (path,) = out.iterdir()
    sent = json.loads(path.read_text())["changes"]
    assert sent and all(c["kind"] == "query" for c in sent)
    assert {c["trial_id"] for c in sent} == left | joined

    # Nothing moved: no new events on the next run.
    invoke("refresh", "--source", "ctgov", "--no-progress", "--full-sweep")
    assert len([c for c in json.loads(invoke("changes", "--json")) if c["kind"] == "query"]) == len(events)


def test_an_alert_rule_naming_an_unknown_query_is_a_config_error(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[database]\npath = "tw.db"\n[[watch.queries]]\nname = "a"\ncond = "covid"\n'
                   f'[[alerts]]\nchannel = "folder"\npath = "{tmp_path}"\nqueries = ["b"]\n')
    result = CliRunner().invoke(cli, ["--config", str(cfg), "queries"])
    assert result.exit_code == 2 and "alerts[0].queries: no query watch named 'b'" in result.output


def test_members_of_an_unknown_query(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[database]\npath = "tw.db"\n[[watch.queries]]\nname = "a"\ncond = "covid"\n')
    result = CliRunner().invoke(cli, ["--config", str(cfg), "queries", "--members", "nope"])
    assert result.exit_code == 2 and "no query watch named 'nope' (known: a)" in result.output
