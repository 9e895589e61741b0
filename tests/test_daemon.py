"""The daemon as a real subprocess against the registry simulator.

Loopback only: the simulator runs in this process on a free port, and so do a
local SMTP server (aiosmtpd) and a webhook receiver.  The daemon runs on a
seconds-level schedule; every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from alert_support import HookServer, free_port

from pipeline.lock import RefreshLock
from pipeline.simulator.corpus import Corpus
from pipeline.simulator.server import SimulatorServer

pytestmark = pytest.mark.slow

TRIALWATCH = [sys.executable, "-m", "pipeline"]
TOKEN = "hook-token-5d1e7a3c9f-SECRET"
DEADLINE = 30.0


def wait_for(predicate, timeout=DEADLINE, interval=0.1, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def write_config(folder: Path, server, trials, *, schedule, alerts="", who=True, ctgov=True, who_extra=""):
    text = f"""
[database]
path = "t.db"

[sources.ctgov]
base_url = "{server.ctgov_url}"
requests_per_second = 50
timeout = 10
retries = 1
enabled = {str(ctgov).lower()}

[sources.who]
base_url = "{server.who_url}"
requests_per_second = 50
timeout = 10
retries = 1
enabled = {str(who).lower()}
{who_extra}

[watch]
trials = [{", ".join(f'"{t}"' for t in trials)}]

[schedule]
{schedule}
jitter = 0
{alerts}
"""
    path = folder / "config.toml"
    path.write_text(text)
    return path


def query(db: Path, sql: str, params=()):
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # no such table yet
        return []
    finally:
        conn.close()


def start_daemon(config: Path, log: Path, *args, env=None):
    return subprocess.Popen(
        [*TRIALWATCH, "--config", str(config), "daemon", *args],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        env={**os.environ, **(env or {})},
        cwd=config.parent,
    )


def stop(proc, timeout=20.0, sig=signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"the daemon did not stop within 20 s of {sig.name}")


@pytest.fixture
def inbox():
    from aiosmtpd.controller import Controller

    class Inbox:
        messages: list = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope.content.decode("utf-8", "replace"))
            return "250 OK"

    box = Inbox()
    box.messages = []
    box.port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def test_daemon_picks_up_an_upstream_change_and_delivers_it(tmp_path, inbox):
    corpus = Corpus(size=12, seed=1)
    trials = corpus.ids[:12]
    with SimulatorServer(corpus) as server, HookServer() as hook:
        alerts = f"""
[[alerts]]
channel = "webhook"
name = "hook"
url = "{hook.url}"
token_env = "TW_HOOK_TOKEN"

[[alerts]]
channel = "email"
name = "mail"
smtp_host = "127.0.0.1"
smtp_port = {inbox.port}
from = "trialwatch@example.org"
to = ["me@example.org"]
starttls = false
"""
        config = write_config(tmp_path, server, trials, schedule='ctgov = "*/2 * * * * *"\nwho = "*/3 * * * * *"',
                              alerts=alerts)
        db, log = tmp_path / "t.db", tmp_path / "daemon.log"
        started = time.monotonic()
        proc = start_daemon(config, log, env={"TW_HOOK_TOKEN": TOKEN})
        try:
            # both sources run once and see every trial for the first time
            wait_for(lambda: {r[0] for r in query(db, "SELECT sources FROM runs WHERE status = 'finished'")}
                     >= {"ctgov", "who"}, what="a first run of each source")
            assert hook.requests == [] and inbox.messages == []  # first sightings are not alerts
            events = httpx.post(f"{server.base_url}/_sim/advance?days=1", timeout=10).json()
            assert events, "the simulator's day 1 changes nothing?"
            wait_for(lambda: hook.requests and inbox.messages, what="a webhook POST and an e-mail")
            picked_up = time.monotonic() - started
        finally:
            code = stop(proc, sig=signal.SIGINT)  # Ctrl-C: the same clean stop as SIGTERM
        assert code == 0
        text = log.read_text()
    body = hook.requests[0]["body"]
    assert hook.requests[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    from pipeline.codec import change_json

    keys = set(change_json({"trial_id": "x", "source": "ctgov", "field": "f", "old": 1, "new": 2,
                            "significance": "status", "detected_at": "t"}))
    assert body["changes"] and all(keys <= set(c) for c in body["changes"])
    assert any(c["field"] == "recruitment_status" for c in body["changes"])
    assert all(c["significance"] != "other" and not c["backfilled"] for c in body["changes"])
    assert "Subject: trialwatch:" in inbox.messages[0]
    # delivered exactly once per channel
    stored = {r[0] for r in query(db, "SELECT id FROM changes WHERE significance != 'other' AND backfilled = 0")}
    for channel in ("hook", "mail"):
        sent = [r[0] for r in query(db, "SELECT item_id FROM deliveries WHERE channel = ? AND item = 'change'", (channel,))]
        assert len(sent) == len(set(sent)) and set(sent) <= stored
    sent_by_hook = [c for r in hook.requests for c in r["body"]["changes"]]
    assert len(sent_by_hook) == len({(c["trial_id"], c["source"], c["field"], c["detected_at"]) for c in sent_by_hook})
    # one log line per run with counts; the token never appears
    assert "ctgov: run " in text and "fetched " in text and "who: run " in text
    assert "delivered" in text
    assert TOKEN not in text
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    print(f"\nupstream change picked up and delivered {picked_up:.1f} s after daemon start")


def test_sigterm_during_a_refresh_leaves_no_partial_rows(tmp_path):
    corpus = Corpus(size=40, seed=2)
    trials = corpus.ids[:40]
    with SimulatorServer(corpus) as server:
        config = write_config(tmp_path, server, trials, schedule='ctgov = "0 0 1 1 *"\nwho = "*/1 * * * * *"',
                              ctgov=False, who_extra="concurrency = 1")
        db, log = tmp_path / "t.db", tmp_path / "daemon.log"
        # first a complete run, then a day of changes, then a slow second run to interrupt
        subprocess.run([*TRIALWATCH, "--config", str(config), "daemon", "--once"], check=True,
                       stderr=subprocess.DEVNULL, timeout=60)
        corpus.advance(days=1)
        server.add_fault({"match": "/Trial2.aspx", "kind": "timeout", "delay": 0.15})
        proc = start_daemon(config, log)
        try:
            wait_for(lambda: query(db, "SELECT fetched FROM runs WHERE status = 'running'"), what="a running refresh")
            time.sleep(1.0)  # some trials into the run
            t0 = time.monotonic()
            code = stop(proc)
            stop_s = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code == 0
    (run,) = query(db, "SELECT id, status, fetched, failed FROM runs ORDER BY id DESC LIMIT 1")
    assert run[1] == "interrupted"
    assert run[2] + run[3] < len(trials), "the run finished before SIGTERM: the test proved nothing"
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    # every trial's current snapshot is its latest one; every later snapshot has its changes
    assert query(db, """SELECT t.trial_id FROM trials t WHERE t.snapshot_id IS NOT NULL AND t.snapshot_id !=
                        (SELECT MAX(id) FROM snapshots s WHERE s.trial_id = t.trial_id AND s.source = t.source)""") == []
    assert query(db, """SELECT s.id FROM snapshots s WHERE EXISTS (SELECT 1 FROM snapshots p WHERE p.trial_id = s.trial_id
                        AND p.source = s.source AND p.id < s.id)
                        AND NOT EXISTS (SELECT 1 FROM changes c WHERE c.snapshot_id = s.id)""") == []
    assert query(db, "SELECT id FROM changes c WHERE snapshot_id IS NOT NULL AND NOT EXISTS"
                     " (SELECT 1 FROM snapshots s WHERE s.id = c.snapshot_id)") == []
    assert "stopped" in log.read_text()
    print(f"\nSIGTERM to exit: {stop_s:.2f} s")


def test_a_second_refresher_is_refused_by_the_lock_or_waits(tmp_path):
    corpus = Corpus(size=4, seed=3)
    with SimulatorServer(corpus) as server:
        config = write_config(tmp_path, server, corpus.ids[:4], schedule='ctgov = "0 0 1 1 *"\nwho = "0 0 1 1 *"')
        lock = RefreshLock(tmp_path / "t.db")
        lock.acquire()  # as if the daemon were mid-run
        try:
            refused = subprocess.run([*TRIALWATCH, "--config", str(config), "refresh", "--no-wait"],
                                     capture_output=True, text=True, timeout=30)
            assert refused.returncode == 3
            assert f"another trialwatch refresh (pid {os.getpid()}) is running" in refused.stderr
            skipped = subprocess.run([*TRIALWATCH, "--config", str(config), "daemon", "--once", "--no-wait"],
                                     capture_output=True, text=True, timeout=30)
            assert skipped.returncode == 0 and "skipped this run" in skipped.stderr
            assert not query(tmp_path / "t.db", "SELECT id FROM runs")
            waiting = subprocess.Popen([*TRIALWATCH, "--config", str(config), "refresh", "--wait"],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(1.5)
            assert waiting.poll() is None  # still waiting for the lock
        finally:
            lock.release()
        out, err = waiting.communicate(timeout=30)
        assert waiting.returncode == 0, err
        assert "run 1:" in out


def test_sigkill_leaves_a_sound_database_that_resumes(tmp_path):
    corpus = Corpus(size=30, seed=4)
    with SimulatorServer(corpus) as server:
        config = write_config(tmp_path, server, corpus.ids[:30], schedule='ctgov = "0 0 1 1 *"\nwho = "*/1 * * * * *"',
                              ctgov=False, who_extra="concurrency = 1")
        db = tmp_path / "t.db"
        server.add_fault({"match": "/Trial2.aspx", "kind": "timeout", "delay": 0.2})
        proc = start_daemon(config, tmp_path / "daemon.log")
        try:
            wait_for(lambda: query(db, "SELECT id FROM snapshots LIMIT 3") and len(query(db, "SELECT id FROM snapshots")) >= 3,
                     what="a refresh under way")
        finally:
            proc.kill()
            proc.wait(10)
        assert query(db, "PRAGMA integrity_check") == [("ok",)]
        assert query(db, "SELECT status FROM runs") == [("running",)]
        server.clear_faults()
        done = subprocess.run([*TRIALWATCH, "--config", str(config), "daemon", "--once"], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    runs = query(db, "SELECT status FROM runs ORDER BY id")
    assert runs == [("interrupted",), ("finished",)]
    states = query(db, "SELECT state, COUNT(*) FROM trials WHERE source = 'who' GROUP BY state")
    assert dict(states).get("present", 0) + dict(states).get("missing", 0) == 30


def test_a_failing_source_does_not_stop_the_other_and_alerts_once(tmp_path):
    """CT.gov unreachable for three runs: WHO still refreshes; one failure alert per trial, then one recovery."""
    from pipeline.cli.core import StopFlag
    from pipeline.config import load_config
    from pipeline.daemon import Daemon

    corpus = Corpus(size=3, seed=5)
    trials = corpus.ids[:3]
    dead = f"http://127.0.0.1:{free_port()}/api/v2"
    with SimulatorServer(corpus) as server, HookServer() as hook:
        alerts = f'[[alerts]]\nchannel = "webhook"\nname = "hook"\nurl = "{hook.url}"\n'
        schedule = 'ctgov = "0 0 1 1 *"\nwho = "0 0 1 1 *"\nfailure_alert_after = 3'
        path = write_config(tmp_path, server, trials, schedule=schedule, alerts=alerts)
        path.write_text(path.read_text().replace(server.ctgov_url, dead).replace("retries = 1", "retries = 0"))
        config = load_config(path)
        daemon = Daemon(config, should_stop=StopFlag())
        for run in range(4):
            ctgov, who = daemon.run_once()
            assert ctgov.ran and ctgov.failed_trials == 3 and ctgov.error is None
            assert who.ran and who.failed_trials == 0
            assert len(hook.requests) == (0 if run < 2 else 1)
        (alert,) = hook.requests
        assert sorted((f["trial_id"], f["kind"], f["streak"]) for f in alert["body"]["failures"]) == [
            (t, "failing", 3) for t in sorted(trials)
        ]
        path.write_text(path.read_text().replace(dead, server.ctgov_url))
        daemon = Daemon(load_config(path), should_stop=StopFlag())
        ctgov, who = daemon.run_once()
        assert ctgov.failed_trials == 0
        assert [f["kind"] for f in hook.requests[-1]["body"]["failures"]] == ["recovered"] * 3
        daemon.run_once()
        assert len(hook.requests) == 2


def test_the_daemon_rereads_a_changed_config_before_a_run(tmp_path, caplog):
    """`watch add` while the daemon runs: the next run fetches the new trial; a broken edit is ignored."""
    import logging

    from pipeline.cli.core import StopFlag
    from pipeline.config import load_config
    from pipeline.daemon import Daemon

    corpus = Corpus(size=3, seed=6)
    first, second = corpus.ids[:2]
    with SimulatorServer(corpus) as server:
        path = write_config(tmp_path, server, [first], schedule='ctgov = "0 0 1 1 *"\nwho = "0 0 1 1 *"', who=False)
        daemon = Daemon(load_config(path), should_stop=StopFlag(), reload=lambda: load_config(path), config_path=path)
        daemon.run_once()
        subprocess.run([*TRIALWATCH, "--config", str(path), "watch", "add", second], check=True, capture_output=True)
        caplog.set_level(logging.INFO)
        (outcome,) = daemon.run_once()
        assert outcome.ran and "config re-read: 2 trials watched" in caplog.text
        db = tmp_path / "t.db"
        assert {r[0] for r in query(db, "SELECT trial_id FROM trials WHERE state = 'present'")} == {first, second}
        good = path.read_text()
        path.write_text(good.replace('jitter = 0', 'jitter = "soon"'))
        (outcome,) = daemon.run_once()
        assert outcome.ran and "keeping the previous one" in caplog.text and "schedule.jitter" in caplog.text


def test_daemon_once_exits_1_when_a_trial_or_a_channel_failed(tmp_path):
    """`daemon --once` is the README's cron recipe: it exits as `refresh` and `deliver` do."""
    corpus = Corpus(size=3, seed=8)
    trials = corpus.ids[:2]
    dead_hook = f"http://127.0.0.1:{free_port()}/hook"
    with SimulatorServer(corpus) as server:
        alerts = f'[[alerts]]\nchannel = "webhook"\nname = "hook"\nurl = "{dead_hook}"\n'
        config = write_config(tmp_path, server, trials, schedule='ctgov = "0 0 1 1 *"\nwho = "0 0 1 1 *"',
                              alerts=alerts, who=False)
        once = [*TRIALWATCH, "--config", str(config), "daemon", "--once"]
        assert subprocess.run(once, capture_output=True, timeout=60).returncode == 0  # the channel starts here
        server.add_fault({"match": "/api/v2/studies", "kind": "not_found", "trial": trials[0]})  # a change
        channel_down = subprocess.run(once, capture_output=True, text=True, timeout=60)
        assert channel_down.returncode == 1, channel_down.stderr  # every trial fetched, the webhook refused
        assert query(tmp_path / "t.db", "SELECT failed, missing FROM runs") == [(0, 0), (0, 1)]
        assert "hook" in channel_down.stderr
        server.clear_faults()
        config.write_text(config.read_text().replace(alerts, ""))
        assert subprocess.run(once, capture_output=True, timeout=60).returncode == 0
        server.add_fault({"match": "/api/v2/studies", "kind": "503"})
        trial_failed = subprocess.run(once, capture_output=True, text=True, timeout=60)
        assert trial_failed.returncode == 1, trial_failed.stderr
        refresh = subprocess.run([*TRIALWATCH, "--config", str(config), "refresh"], capture_output=True, timeout=60)
        assert refresh.returncode == 1  # the same answer from refresh
