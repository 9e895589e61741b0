"""End to end over real sockets: simulator -> refresh -> SQLite file -> changes.

The simulator's day 1 is scripted, so the exact changes are known: this is the
acceptance test of the whole pipeline (fetch, parse, normalize, diff, store).
"""

from __future__ import annotations

import sqlite3

import pytest

from pipeline.config import load_config
from pipeline.demo import write_demo_config
from pipeline.refresh import refresh
from pipeline.simulator.corpus import Corpus
from pipeline.simulator.server import SimulatorServer
from pipeline.store import Store


@pytest.fixture
def world(tmp_path):
    corpus = Corpus(size=12, seed=1)
    with SimulatorServer(corpus) as server:
        config = load_config(write_demo_config(tmp_path, server.ctgov_url, server.who_url, corpus.ids))
        with Store(config.database_path) as store:
            yield corpus, server, config, store


def keyed(rows):
    return sorted((r["trial_id"], r["source"], r["field"]) for r in rows)


def counts(db_path):
    conn = sqlite3.connect(db_path)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("snapshots", "changes")}
    finally:
        conn.close()


def test_refresh_change_refresh_quiet(world):
    corpus, server, config, store = world
    ids = corpus.ids
    nct = [t for t in ids if t.startswith("NCT")]
    who_only = [t for t in ids if not t.startswith("NCT")]
    assert len(nct) >= 8 and who_only

    first = refresh(config, store, backoff_base=0.01)
    assert first.counts["new"] == 2 * len(nct) + len(who_only)
    assert first.counts["failed"] == 0 and first.counts["changes"] == 0
    assert store.changes() == []  # a first sighting is a snapshot, not a list of changes
    # the batch API was used: one /studies request for the whole NCT watchlist
    assert first.by_source["ctgov"]["requests"] == 1
    assert first.by_source["who"]["requests"] == len(ids)

    events = corpus.advance(days=1)
    assert len(events) == 8

    second = refresh(config, store, backoff_base=0.01)
    rows = store.changes(include_events=False)  # discrepancy and flag events: tests/test_trial_view.py
    expected = [
        (nct[0], "ctgov", "recruitment_status"), (nct[0], "who", "recruitment_status"),
        (nct[1], "ctgov", "target_size"), (nct[1], "who", "target_size"),
        (nct[2], "ctgov", "primary_outcomes"), (nct[2], "who", "primary_outcomes"),
        (nct[3], "ctgov", "_record"), (nct[3], "who", "_record"),
        (nct[4], "ctgov", "recruitment_status"), (nct[4], "ctgov", "why_stopped"), (nct[4], "who", "recruitment_status"),
        (nct[5], "ctgov", "completion_date"),
        (nct[6], "ctgov", "countries"), (nct[6], "ctgov", "locations"), (nct[6], "who", "countries"),
        (who_only[0], "who", "recruitment_status"),
    ]
    assert keyed(rows) == sorted(expected)
    by_key = {(r["trial_id"], r["source"], r["field"]): r for r in rows}
    status = by_key[(nct[0], "ctgov", "recruitment_status")]
    assert (status["old"], status["new"], status["significance"]) == ("recruiting", "active_not_recruiting", "status")
    size = by_key[(nct[1], "ctgov", "target_size")]
    assert size["new"] - size["old"] == 40 and size["significance"] == "enrollment"
    outcome = by_key[(nct[2], "ctgov", "primary_outcomes")]
    assert outcome["added"] and outcome["removed"] and outcome["significance"] == "outcomes"
    gone = by_key[(nct[3], "ctgov", "_record")]
    assert gone["kind"] == "missing" and gone["snapshot_id"] is None
    assert by_key[(nct[4], "ctgov", "recruitment_status")]["new"] == "terminated"
    assert by_key[(nct[5], "ctgov", "completion_date")]["significance"] == "dates"
    # the registry's wording changed too: kept as a detail row, not listed twice
    details = [r for r in store.changes(include_details=True) if r["kind"] == "detail"]
    assert {(r["trial_id"], r["field"]) for r in details} >= {(nct[0], "recruitment_status_raw")}
    assert second.counts["missing"] == 2 and second.counts["failed"] == 0
    assert second.exit_code == 0
    # every change points at the snapshot it led to (or none, for 'missing')
    for r in rows:
        if r["kind"] != "missing":
            snap = store.load_snapshot(r["snapshot_id"])
            assert snap["trial_id"] == r["trial_id"] and snap["source"] == r["source"]

    before = counts(config.database_path)
    third = refresh(config, store, backoff_base=0.01)
    assert counts(config.database_path) == before  # nothing changed upstream: nothing added
    assert third.counts["changed"] == 0 and third.counts["new"] == 0
    assert third.counts["unchanged"] == 2 * len(nct) + len(who_only) - 2


def test_noise_only_changes_add_nothing(world):
    corpus, server, config, store = world
    refresh(config, store, backoff_base=0.01)
    before = counts(config.database_path)
    corpus.day += 8  # versionHolder and WHO's "Last refreshed on" move; nothing the sponsor did
    again = refresh(config, store, backoff_base=0.01)
    assert counts(config.database_path) == before
    assert again.counts["unchanged"] == again.counts["fetched"]


def test_blocked_who_page_is_an_error_not_a_change(world):
    corpus, server, config, store = world
    refresh(config, store, backoff_base=0.01)
    target = corpus.ids[0]
    server.set_faults([{"match": "/Trial2.aspx", "kind": "bot_check", "trial": target}])
    result = refresh(config, store, backoff_base=0.01)
    assert result.counts["failed"] == 1 and result.exit_code == 1
    assert [(t, s) for t, s, _ in result.failures] == [(target, "who")]
    assert store.changes() == []
    (row,) = [r for r in store.trials("who") if r["trial_id"] == target]
    assert row["state"] == "present" and row["fail_streak"] == 1 and "BlockedPage" in row["last_error"]
    errors = store.db.execute("SELECT count(*) FROM fetch_log WHERE run_id = ?", [result.run_id]).fetchone()[0]
    assert errors >= len(corpus.ids)
    server.clear_faults()
    recovered = refresh(config, store, backoff_base=0.01)
    assert recovered.counts["failed"] == 0 and store.changes() == []
    (row,) = [r for r in store.trials("who") if r["trial_id"] == target]
    assert row["fail_streak"] == 0


def test_missing_then_reappeared_is_one_change(world):
    corpus, server, config, store = world
    refresh(config, store, backoff_base=0.01)
    corpus.advance(days=1)
    refresh(config, store, backoff_base=0.01)
    gone = corpus.ids[3]
    corpus.restore(gone)
    refresh(config, store, backoff_base=0.01)
    back = [r for r in store.changes(trial_id=gone) if r["kind"] == "reappeared"]
    assert {r["source"] for r in back} == {"ctgov", "who"}
    assert [r["kind"] for r in store.changes(trial_id=gone)] == ["missing", "missing", "reappeared", "reappeared"]


def test_unreachable_registry_fails_trials_but_keeps_data(tmp_path):
    config_path = write_demo_config(tmp_path, "http://127.0.0.1:9/api/v2", "http://127.0.0.1:9", ["NCT90000001"])
    config = load_config(config_path)
    with Store(config.database_path) as store:
        result = refresh(config, store, backoff_base=0.01)
        assert result.counts["failed"] == 2 and result.exit_code == 1
        assert store.changes() == [] and store.snapshots_of("NCT90000001") == []
        # nothing listens on port 9: each source is given up for the run (issue 11 item 1)
        assert all("SourceUnreachable: cannot connect to" in e and "(connection refused)" in e
                   for _, _, e in result.failures)
        assert set(result.unreachable) == {"ctgov", "who"}
