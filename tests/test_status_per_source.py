"""Issue 11 item 6: ``status`` shows each source's own counts and its last refresh run.

Through the real CLI on the simulator: one refresh of both sources (CT.gov and the
WHO portal watch different numbers of the trials), then a backfill, which must not
become CT.gov's "last run".  A database from before per-source counts is migrated.
"""

from __future__ import annotations

import json
import sqlite3

from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.simulator import Corpus, SimulatorServer
from pipeline.store import SCHEMA_VERSION, Store

from test_faults_sim import write_config


def run(config, *args):
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


def test_status_counts_per_source_and_a_backfill_is_not_the_last_run(tmp_path):
    corpus = Corpus(size=12, seed=1)
    nct = [t for t in corpus.ids if t.startswith("NCT")]
    with SimulatorServer(corpus) as server:
        config = write_config(tmp_path, server, corpus.ids)
        refreshed = run(config.path, "refresh", "--no-progress")
        assert refreshed.exit_code == 0, refreshed.output
        refresh_run = int(refreshed.output.split("run ", 1)[1].split(":", 1)[0])
        backfilled = run(config.path, "backfill", "--no-progress", nct[0])
        assert backfilled.exit_code == 0, backfilled.output
    doc = json.loads(run(config.path, "status", "--json").output)
    ctgov, who = doc["sources"]["ctgov"]["last_run"], doc["sources"]["who"]["last_run"]
    assert ctgov["run_id"] == who["run_id"] == refresh_run  # not the backfill's run
    assert ctgov["trigger"] == "cli"
    assert ctgov["counts"]["fetched"] == ctgov["counts"]["new"] == len(nct)
    assert who["counts"]["fetched"] == who["counts"]["new"] == len(corpus.ids)
    assert ctgov["counts"]["requests"] < who["counts"]["requests"]
    text = run(config.path, "status").output
    assert f"fetched {len(nct)}, new {len(nct)}," in text
    assert f"fetched {len(corpus.ids)}, new {len(corpus.ids)}," in text


def test_an_unreachable_source_shows_its_own_failure_in_status(tmp_path):
    corpus = Corpus(size=6, seed=1)
    with SimulatorServer(corpus) as server:
        config = write_config(tmp_path, server, corpus.ids)
        path = config.path
        path.write_text(path.read_text().replace(server.ctgov_url, "http://127.0.0.1:9/api/v2"))
        result = run(path, "refresh", "--no-progress")
    assert result.exit_code == 1
    doc = json.loads(run(path, "status", "--json").output)
    ctgov, who = doc["sources"]["ctgov"]["last_run"], doc["sources"]["who"]["last_run"]
    nct = [t for t in corpus.ids if t.startswith("NCT")]
    assert ctgov["counts"]["failed"] == len(nct) and ctgov["counts"]["fetched"] == 0
    assert who["counts"]["failed"] == 0 and who["counts"]["fetched"] == len(corpus.ids)
    assert ctgov["note"].startswith("ctgov: cannot connect to http://127.0.0.1:9/api/v2") and who["note"] is None
    text = run(path, "status").output
    assert "last run of ctgov: ctgov: cannot connect" in text
    # the failing trials share one error: one row, with a count
    failing_rows = [line for line in text.splitlines() if line.startswith(nct[0])]
    assert len(failing_rows) == 1 and f"(\u00d7{len(nct)})" in failing_rows[0], text


def test_migration_gives_old_refresh_runs_their_sources(tmp_path):
    path = tmp_path / "old.db"
    with Store(path) as store:
        one = store.start_run(["ctgov"], "cli")
        store.finish_run(one, {"fetched": 3, "failed": 1})
        both = store.start_run(["ctgov", "who"], "daemon")
        store.finish_run(both, {"fetched": 9})
        backfill = store.start_run(["ctgov"], "backfill")
        store.finish_run(backfill, {"fetched": 40})
        store.conn.execute("DROP TABLE run_sources")
        store.conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    with Store(path) as store:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert store.last_run("ctgov")["id"] == both and store.last_run("ctgov")["fetched"] is None
        assert store.last_run("who")["id"] == both
    rows = sqlite3.connect(path).execute("SELECT run_id, source, fetched, failed FROM run_sources ORDER BY 1, 2")
    assert rows.fetchall() == [(one, "ctgov", 3, 1), (both, "ctgov", None, None), (both, "who", None, None)]
