"""Query watches and history backfill against the registry simulator (real sockets, real SQLite)."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from click.testing import CliRunner

from pipeline.backfill import backfill_trial
from pipeline.cli import cli
from pipeline.config import parse_config
from pipeline.diff import diff_records
from pipeline.http_client import RegistryClient
from pipeline.mirror import window_start
from pipeline.sources import SOURCES
from pipeline.refresh import refresh
from pipeline.simulator.corpus import Corpus
from pipeline.simulator.server import SimulatorServer
from pipeline.store import Store

CTGOV = SOURCES["ctgov"]

ALL = ["RECRUITING", "NOT_YET_RECRUITING", "ACTIVE_NOT_RECRUITING", "COMPLETED", "TERMINATED", "WITHDRAWN",
       "SUSPENDED", "ENROLLING_BY_INVITATION", "UNKNOWN"]


@pytest.fixture
def sim():
    corpus = Corpus(160, 5, change_rate=0.05)
    with SimulatorServer(corpus) as server:
        yield corpus, server


def make_config(tmp_path, server, *, queries=(), trials=(), page_size=40, full_sweep_days=7):
    return parse_config(
        {
            "database": {"path": str(tmp_path / "tw.db")},
            "sources": {
                "ctgov": {"base_url": server.ctgov_url, "requests_per_second": 1000, "page_size": page_size,
                          "ids_per_request": 50, "full_sweep_days": full_sweep_days},
                "who": {"base_url": server.who_url, "requests_per_second": 1000},
            },
            "watch": {"trials": list(trials), "queries": list(queries)},
        },
        base_dir=tmp_path,
    )


def sim_stats(server) -> dict:
    return httpx.get(server.base_url + "/_sim/stats").json()["requests"]


def studies_urls(store, run_id=None):
    sql = "SELECT url FROM fetch_log WHERE url LIKE '%/studies?%'"
    params = []
    if run_id is not None:
        sql += " AND run_id = ?"
        params.append(run_id)
    return [parse_qs(urlsplit(r[0]).query) for r in store.conn.execute(sql + " ORDER BY id", params)]


def live_nct(corpus, statuses=None):
    return {
        t.trial_id for t in corpus.trials
        if t.is_nct and not t.deleted and (statuses is None or t.state["status"] in statuses)
    }


def test_first_load_pages_then_incremental_window_then_skip(tmp_path, sim):
    corpus, server = sim
    config = make_config(tmp_path, server, queries=[{"name": "all", "status": ALL}])
    store = Store(config.database_path)
    seen_progress = []

    # First run: every match, in pages of page_size, followed by pageToken.
    result = refresh(config, store, sources=["ctgov"], progress=lambda *a: seen_progress.append(a))
    expected = live_nct(corpus, set(ALL))
    assert result.counts["new"] == len(expected) and result.counts["failed"] == 0
    assert store.query_members("all") == expected
    pages = studies_urls(store, result.run_id)
    assert len(pages) == -(-len(expected) // 40)
    assert all(p["pageSize"] == ["40"] for p in pages) and "pageToken" in pages[1]
    assert "filter.advanced" not in pages[0]
    assert seen_progress[-1] == ("query all", len(expected), len(expected))
    watch = store.query_watch("all")
    assert watch["sync_date"] == corpus.date.isoformat() and watch["loaded_at"]

    # Nothing moved upstream: /version only, no /studies request at all.
    before = sim_stats(server)
    result = refresh(config, store, sources=["ctgov"])
    after = sim_stats(server)
    assert after.get("ctgov.studies", 0) == before.get("ctgov.studies", 0)
    assert after["ctgov.version"] == before["ctgov.version"] + 1
    assert result.counts["queries_skipped"] == 1 and result.counts["fetched"] == 0

    # A simulated day passes: only studies updated since the last sync minus 2 days.
    events = server.advance(1)
    served_before = httpx.get(server.base_url + "/_sim/stats").json().get("studies_served", 0)
    result = refresh(config, store, sources=["ctgov"])
    served = httpx.get(server.base_url + "/_sim/stats").json().get("studies_served", 0) - served_before
    (window,) = {p["filter.advanced"][0] for p in studies_urls(store, result.run_id)}
    start = window_start(watch["sync_date"])
    assert window == f"AREA[LastUpdatePostDate]RANGE[{start},MAX]"
    assert start == "2026-01-03" if corpus.start.isoformat() == "2026-01-05" else True
    # and the simulator applied that filter: it served only the studies in the window
    assert served == result.counts["fetched"] < len(expected) // 2
    changed = {e["trial_id"] for e in events if e["source"] in ("ctgov", "both") and e["kind"] != "deleted"}
    recorded = {c["trial_id"] for c in store.changes(source="ctgov") if c["kind"] == "field"}
    assert changed and changed <= recorded
    assert store.query_watch("all")["sync_date"] == corpus.date.isoformat()
    store.close()


def test_full_sweep_finds_a_deleted_study(tmp_path, sim):
    corpus, server = sim
    config = make_config(tmp_path, server, queries=[{"name": "all", "status": ALL}])
    store = Store(config.database_path)
    refresh(config, store, sources=["ctgov"])
    events = server.advance(1)
    deleted = [e["trial_id"] for e in events if e["kind"] == "deleted" and e["trial_id"].startswith("NCT")]
    assert deleted

    # The incremental query never shows a deletion...
    refresh(config, store, sources=["ctgov"])
    assert not [c for c in store.changes() if c["kind"] == "missing"]
    # ...the sweep of IDs (fields=NCTId) does, confirmed by filter.ids.
    result = refresh(config, store, sources=["ctgov"], full_sweep=True)
    assert result.counts["queries_swept"] == 1
    urls = studies_urls(store, result.run_id)
    assert any(p.get("fields") == ["NCTId"] for p in urls)
    confirm = [p for p in urls if "filter.ids" in p]
    assert confirm and set(deleted) <= set(confirm[0]["filter.ids"][0].split(","))
    missing = [c for c in store.changes() if c["kind"] == "missing"]
    assert sorted(c["trial_id"] for c in missing) == sorted(deleted)
    assert all(c["backfilled"] is False for c in missing)
    assert store.query_members("all", "missing") == set(deleted)
    assert {t["trial_id"] for t in store.trials("ctgov") if t["state"] == "missing"} == set(deleted)

    # A second sweep adds nothing new.
    refresh(config, store, sources=["ctgov"], full_sweep=True)
    assert len([c for c in store.changes() if c["kind"] == "missing"]) == len(deleted)
    store.close()


def test_sweep_is_periodic(tmp_path, sim):
    corpus, server = sim
    config = make_config(tmp_path, server, queries=[{"name": "all", "status": ALL}], full_sweep_days=1)
    store = Store(config.database_path)
    refresh(config, store, sources=["ctgov"])
    # pretend the last sweep was two days ago: the next run sweeps without being asked
    store.conn.execute("UPDATE query_watches SET last_full_sweep = '2000-01-01T00:00:00Z'")
    result = refresh(config, store, sources=["ctgov"])
    assert result.counts["queries_swept"] == 1
    assert any(p.get("fields") == ["NCTId"] for p in studies_urls(store, result.run_id))
    store.close()


def test_a_trial_leaving_a_status_filtered_query_is_still_seen(tmp_path, sim):
    corpus, server = sim
    config = make_config(tmp_path, server, queries=[{"name": "recruiting", "status": ["RECRUITING"]}])
    store = Store(config.database_path)
    refresh(config, store, sources=["ctgov"])
    members = store.query_members("recruiting")
    assert members == live_nct(corpus, {"RECRUITING"})
    events = server.advance(1)
    moved = {e["trial_id"] for e in events if e["kind"] == "status" and e["old"] == "RECRUITING"
             and e["trial_id"] in members}
    assert moved
    result = refresh(config, store, sources=["ctgov"])
    # the incremental request carries no status filter: the change is applied here
    assert all("filter.overallStatus" not in p for p in studies_urls(store, result.run_id))
    status_changes = {c["trial_id"] for c in store.changes() if c["field"] == "recruitment_status"}
    assert moved <= status_changes
    assert moved <= store.query_members("recruiting", "left")
    store.close()


def test_changed_query_is_loaded_afresh_and_old_members_reconciled(tmp_path, sim):
    corpus, server = sim
    store = Store(tmp_path / "tw.db")
    refresh(make_config(tmp_path, server, queries=[{"name": "q", "status": ["RECRUITING"]}]), store, sources=["ctgov"])
    config = make_config(tmp_path, server, queries=[{"name": "q", "status": ["COMPLETED"]}])
    result = refresh(config, store, sources=["ctgov"])
    assert result.counts["queries_loaded"] == 1
    assert store.query_members("q") == live_nct(corpus, {"COMPLETED"})
    assert store.query_members("q", "left") == live_nct(corpus, {"RECRUITING"})
    store.close()


# ---------------------------------------------------------------------------------------
# History backfill
# ---------------------------------------------------------------------------------------


def test_backfill_versions_dates_flags_idempotence(tmp_path, sim):
    corpus, server = sim
    trial = next(t.trial_id for t in corpus.nct_trials if len(corpus.history_changes(t.trial_id)) >= 3)
    versions = corpus.history_changes(trial)
    config = make_config(tmp_path, server, trials=[trial])
    store = Store(config.database_path)
    with httpx.Client() as http:
        client = RegistryClient(config.sources["ctgov"], http)
        outcome = backfill_trial(store, client, CTGOV, trial)
        assert outcome.error is None and outcome.versions == len(versions) == outcome.stored
        assert outcome.adopted  # never fetched live: the newest version becomes current
        snaps = [s for s in store.snapshots_of(trial) if s["backfilled"]]
        assert [s["registry_version"] for s in snaps] == [v["version"] for v in versions]
        assert [s["registry_date"] for s in snaps] == [v["date"] for v in versions]
        changes = store.changes(trial_id=trial)
        assert changes and all(c["backfilled"] for c in changes)
        by_snapshot = {s["id"]: s for s in snaps}
        for c in changes:
            assert c["detected_at"] == by_snapshot[c["snapshot_id"]]["registry_date"] + "T00:00:00Z"
        assert store.changes(trial_id=trial, include_backfilled=False) == []
        # the changes rebuild each version from the one before
        first = store.load_snapshot(snaps[0]["id"])["record"]
        assert diff_records(first, store.load_snapshot(snaps[-1]["id"])["record"])

        # Twice adds nothing (and fetches only the index).
        requests_before = client.requests
        again = backfill_trial(store, client, CTGOV, trial)
        assert again.stored == 0 and client.requests == requests_before + 1
        assert len(store.snapshots_of(trial)) == len(snaps) and len(store.changes(trial_id=trial)) == len(changes)

    # The live record equals the newest version: a live refresh finds nothing.
    result = refresh(config, store, sources=["ctgov"])
    assert result.counts["unchanged"] == 1 and result.counts["changes"] == 0
    store.close()


def test_backfill_keeps_the_live_snapshot_current(tmp_path, sim):
    corpus, server = sim
    trials = corpus.nct_ids[:6]
    config = make_config(tmp_path, server, trials=trials)
    store = Store(config.database_path)
    refresh(config, store, sources=["ctgov"])
    live = {t: store.load_state(t, "ctgov") for t in trials}
    with httpx.Client() as http:
        client = RegistryClient(config.sources["ctgov"], http)
        for t in trials:
            outcome = backfill_trial(store, client, CTGOV, t)
            assert outcome.error is None and not outcome.adopted
    for t in trials:
        state = store.load_state(t, "ctgov")
        assert state.snapshot_id == live[t].snapshot_id  # still the live one
        newest = [s for s in store.snapshots_of(t) if s["backfilled"]][-1]
        assert newest["content_hash"] == state.content_hash  # history and live normalize alike
    result = refresh(config, store, sources=["ctgov"])
    assert result.counts["unchanged"] == len(trials) and result.counts["changes"] == 0
    store.close()


def test_query_backfill_option(tmp_path):
    corpus = Corpus(24, 9)
    with SimulatorServer(corpus) as server:
        config = make_config(tmp_path, server, queries=[{"name": "all", "status": ALL, "backfill": True}])
        store = Store(config.database_path)
        result = refresh(config, store, sources=["ctgov"])
        members = store.query_members("all")
        assert result.counts["backfilled"] == len(members) and store.backfilled_trials() == members
        assert all(c["backfilled"] for c in store.changes())
        # next run: nothing left to backfill
        assert refresh(config, store, sources=["ctgov"]).counts["backfilled"] == 0
        store.close()


def test_cli_backfill_history_queries_refresh(tmp_path, sim):
    corpus, server = sim
    trial = next(t.trial_id for t in corpus.nct_trials if len(corpus.history_changes(t.trial_id)) >= 3)
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[database]\npath = "tw.db"\n'
        f'[sources.ctgov]\nbase_url = "{server.ctgov_url}"\nrequests_per_second = 1000\n'
        f'[sources.who]\nbase_url = "{server.who_url}"\nrequests_per_second = 1000\n'
        f'[[watch.queries]]\nname = "recruiting"\nstatus = ["RECRUITING"]\n'
    )
    runner = CliRunner()
    invoke = lambda *a: runner.invoke(cli, ["--config", str(cfg), *a], catch_exceptions=False)

    result = invoke("backfill", trial)
    assert result.exit_code == 0, result.output
    assert re.search(rf"{trial}: \d+ versions, \d+ stored now", result.output)
    result = invoke("history", trial)
    assert result.exit_code == 0 and "[backfilled]" in result.output
    result = invoke("backfill", "ISRCTN83971151")
    assert result.exit_code == 2

    result = invoke("refresh", "--source", "ctgov", "--full-sweep")
    assert result.exit_code == 0, result.output
    assert "queries: 1 loaded" in result.output
    result = invoke("queries", "--json")
    (row,) = json.loads(result.output)
    assert row["name"] == "recruiting" and row["members"] == len(live_nct(corpus, {"RECRUITING"}))
    assert row["loaded"] and row["last_full_sweep"]


def test_a_sweep_that_loses_most_members_is_a_suspected_registry_fault(tmp_path, sim):
    corpus, server = sim
    config = make_config(tmp_path, server, queries=[{"name": "all", "status": ALL}])
    store = Store(config.database_path)
    refresh(config, store, sources=["ctgov"])
    members = store.query_members("all")
    # The registry's search loses most of the query's records (as a broken index would).
    lost = sorted(members)[: len(members) * 2 // 3]
    for trial_id in lost:
        corpus.get(trial_id).deleted = True
    corpus.generation += 1
    result = refresh(config, store, sources=["ctgov"], full_sweep=True)
    assert not [c for c in store.changes() if c["kind"] == "missing"]
    assert result.counts["failed"] == len(lost)
    assert store.query_members("all") == members  # still members, failed for this run
    store.close()
