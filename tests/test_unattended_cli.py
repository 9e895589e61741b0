"""The status and deliver commands through click's runner (no network)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from alert_support import HookServer, fail, record, save
from pipeline.cli import cli
from pipeline.cron import next_fire_times
from pipeline.store import Store

SECRET = "sekrit-token-0a9b8c7d"


@pytest.fixture
def app(tmp_path):
    def make(alerts=""):
        config = tmp_path / "config.toml"
        config.write_text(
            '[database]\npath = "t.db"\n[watch]\ntrials = ["NCT01000001", "NCT01000002"]\n'
            '[schedule]\nctgov = "0 10 * * 1-5"\nwho = "0 4 * * 6"\nfailure_alert_after = 2\n' + alerts
        )
        runner = CliRunner()
        return lambda *args: runner.invoke(cli, ["--config", str(config), *args], catch_exceptions=False)

    make.db = tmp_path / "t.db"
    return make


def test_status_shows_last_and_next_runs_and_failing_trials(app):
    run = app()
    empty = json.loads(run("status", "--json").output)
    assert empty["sources"]["ctgov"]["last_run"] is None and empty["failing_trials"] == []
    store = Store(app.db)
    run_id = store.start_run(["ctgov"], "daemon")
    store.start_run_sources(run_id, ["ctgov"])  # as refresh() records a run
    save(store, None, record("NCT01000001"), run_id=run_id)
    for _ in range(3):
        fail(store, "NCT01000002", error="HTTP 503")
    store.finish_run_source(run_id, "ctgov", {"fetched": 1, "new": 1, "failed": 1})
    store.finish_run(run_id, {"fetched": 1, "new": 1, "failed": 1})
    store.close()
    now = datetime.now(timezone.utc)
    doc = json.loads(run("status", "--json").output)
    ctgov = doc["sources"]["ctgov"]
    assert ctgov["last_run"]["run_id"] == run_id and ctgov["last_run"]["status"] == "finished"
    assert ctgov["last_run"]["counts"]["fetched"] == 1 and ctgov["last_run"]["duration_s"] >= 0
    assert ctgov["next_run"] == next_fire_times("0 10 * * 1-5", now, 1)[0].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert doc["sources"]["who"]["last_run"] is None
    assert doc["sources"]["who"]["next_run"] == next_fire_times("0 4 * * 6", now, 1)[0].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [(t["trial_id"], t["fail_streak"]) for t in doc["failing_trials"]] == [("NCT01000002", 3)]
    text = run("status").output
    assert "NCT01000002" in text and "0 10 * * 1-5" in text and "daemon: not running" in text


def test_deliver_command_sends_once_and_exits_1_while_a_channel_is_down(app, monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", SECRET)
    with HookServer(statuses=[500]) as hook:
        run = app(f'[[alerts]]\nchannel = "webhook"\nname = "hook"\nurl = "{hook.url}"\ntoken_env = "HOOK_TOKEN"\n')
        store = Store(app.db)
        save(store, None, record("NCT01000001"))
        store.close()
        assert run("deliver").exit_code == 0  # the channel starts here
        store = Store(app.db)
        save(store, store.load_state("NCT01000001", "ctgov").record, record("NCT01000001", recruitment_status="completed"))
        store.close()
        down = run("deliver")
        assert down.exit_code == 1 and SECRET not in down.output
        (channel,) = json.loads(run("status", "--json").output)["channels"]
        assert channel["backlog"] == 1 and channel["last_error"] == "webhook 'hook' answered HTTP 500"
        back = run("deliver")
        assert back.exit_code == 0 and "delivered 1 change" in back.output
        assert "nothing new" in run("deliver").output
        assert len(hook.requests) == 1
        status = json.loads(run("status", "--json").output)
        assert status["channels"][0]["name"] == "hook" and status["channels"][0]["last_error"] is None
        assert status["channels"][0]["backlog"] == 0


def test_deliver_without_alerts_and_with_an_unknown_name(app):
    run = app()
    assert "nothing to deliver" in run("deliver").output
    bad = run("deliver", "--alert", "nope")
    assert bad.exit_code == 2 and "no alert rule named 'nope'" in bad.output


def test_a_second_daemon_on_the_same_database_is_refused(app):
    """The daemon's single-instance lock decides, and status reads it (not a stored PID)."""
    import os

    from pipeline.lock import DaemonLock

    run = app()
    running = DaemonLock(app.db)
    running.acquire()  # as a daemon would, for its whole life
    try:
        result = run("daemon")
        assert result.exit_code == 1
        assert f"a trialwatch daemon (pid {os.getpid()}" in result.output and "already running" in result.output
        status = json.loads(run("status", "--json").output)
        assert status["daemon"]["running"] is True and status["daemon"]["pid"] == os.getpid()
    finally:
        running.release()
    status = json.loads(run("status", "--json").output)
    assert status["daemon"] == {"running": False}  # the lock is free: whatever PID the file names


def test_status_next_runs_on_a_frozen_clock(tmp_path):
    from pipeline.config import parse_config
    from pipeline.status import load_status, render_status

    config = parse_config({"database": {"path": str(tmp_path / "t.db")}, "sources": {"who": {"enabled": False}},
                           "schedule": {"ctgov": "30 9 * * 1-5"}})
    friday_noon = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
    doc = load_status(config, friday_noon)
    assert doc["sources"]["ctgov"]["next_run"] == "2026-11-30T09:30:00Z"  # Monday
    assert doc["sources"]["who"] == {"enabled": False, "schedule": "0 4 * * 6", "jitter_s": 300, "next_run": None,
                                     "last_run": None}
    assert not (tmp_path / "t.db").exists()  # status never creates the database
    text = render_status(doc)
    assert "2026-11-30T09:30:00Z" in text and "disabled" in text
