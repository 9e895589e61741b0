"""Locks as real processes: the config's read-modify-write, the refresh lock, one daemon per database.

Every test runs the `trialwatch` command in subprocesses, several at the same moment
where the fault is a race; every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import tomllib

from pipeline.lock import RefreshLock

pytestmark = pytest.mark.slow

TRIALWATCH = [sys.executable, "-m", "pipeline"]
DEAD = "http://127.0.0.1:9/api/v2"  # never contacted: schedules below never fire during a test


def write_config(folder: Path, trials=(), extra="") -> Path:
    path = folder / "config.toml"
    path.write_text(
        "# my watchlist\n"
        '[database]\npath = "t.db"\n'
        f'[sources.ctgov]\nbase_url = "{DEAD}"\nretries = 0\ntimeout = 2\n'
        '[sources.who]\nenabled = false\n'
        f'[watch]\ntrials = [{", ".join(repr(t) for t in trials)}]\n'
        '[schedule]\nctgov = "0 0 1 1 *"\njitter = 0\n' + extra
    )
    return path


def trials_in(path: Path) -> list[str]:
    return tomllib.loads(path.read_text())["watch"]["trials"]


def popen(config: Path, *args, **kw):
    return subprocess.Popen([*TRIALWATCH, "--config", str(config), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=config.parent, **kw)


def finish(proc, timeout=60.0):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{proc.args} did not finish within {timeout} s: {err}")
    return proc.returncode, out, err


def query(db: Path, sql: str):
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # no such table yet
        return []
    finally:
        conn.close()


# -- config.toml: read-modify-write under a lock, replaced atomically (issue 9, items 5 and 6) ----


def test_watch_adds_at_the_same_moment_all_land(tmp_path):
    watched = [f"NCT0{3000000 + i}" for i in range(400)]  # a long list: each edit takes a while
    config = write_config(tmp_path, watched)
    ids = [f"NCT0{4000000 + i}" for i in range(8)]
    procs = [popen(config, "watch", "add", trial) for trial in ids]
    for proc in procs:
        code, _out, err = finish(proc)
        assert code == 0, err
    assert sorted(trials_in(config)) == sorted(watched + ids)
    assert config.read_text().startswith("# my watchlist\n")  # comments kept


def test_config_is_replaced_atomically_keeping_its_mode_and_symlink(tmp_path):
    (tmp_path / "etc").mkdir()
    real = write_config(tmp_path / "etc")
    os.chmod(real, 0o640)
    link = tmp_path / "config-link.toml"
    link.symlink_to(real)
    before = real.stat().st_ino
    subprocess.run([*TRIALWATCH, "--config", str(link), "watch", "add", "NCT04280705"], check=True,
                   capture_output=True, timeout=60)
    assert link.is_symlink() and trials_in(real) == ["NCT04280705"]
    assert real.stat().st_ino != before, "rewritten in place: a reader could see it truncated"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert not [p.name for p in real.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_reader_never_sees_the_config_empty_while_it_is_rewritten(tmp_path):
    config = write_config(tmp_path, ["NCT04280705"], extra="\n" + "# padding to widen a torn write\n" * 2000)
    seen_bad: list[str] = []
    done = threading.Event()

    def read_forever():
        while not done.is_set():
            try:
                text = config.read_text()
            except FileNotFoundError:
                seen_bad.append("missing")
                continue
            if "NCT04280705" not in text:
                seen_bad.append(f"{len(text)} chars without the first trial")

    reader = threading.Thread(target=read_forever)
    reader.start()
    try:
        for i in range(6):
            trial = f"NCT0{5000000 + i}"
            for command in ("add", "remove"):
                subprocess.run([*TRIALWATCH, "--config", str(config), "watch", command, trial], check=True,
                               capture_output=True, timeout=60)
    finally:
        done.set()
        reader.join(10)
    assert not seen_bad, f"a reader saw a torn config: {seen_bad[:3]}"


def test_watch_add_waits_for_the_config_lock(tmp_path):
    from pipeline.lock import config_lock

    config = write_config(tmp_path)
    lock = config_lock(config)
    lock.acquire()  # another edit in progress
    try:
        proc = popen(config, "watch", "add", "NCT04280705")
        time.sleep(2.0)
        assert proc.poll() is None, "watch add did not wait for the edit in progress"
        assert trials_in(config) == []
    finally:
        lock.release()
    code, out, err = finish(proc)
    assert code == 0, err
    assert trials_in(config) == ["NCT04280705"]


def test_the_daemon_keeps_its_config_when_the_file_is_caught_empty(tmp_path, caplog):
    import logging

    from pipeline.cli.core import StopFlag
    from pipeline.config import load_config
    from pipeline.daemon import Daemon

    config = write_config(tmp_path, ["NCT04280705"], extra='[[alerts]]\nchannel = "folder"\nname = "f"\npath = "out"\n')
    daemon = Daemon(load_config(config), should_stop=StopFlag(), reload=lambda: load_config(config),
                    config_path=config)
    good = config.read_text()
    caplog.set_level(logging.INFO)
    config.write_text("")  # an editor (or the old `watch add`) between truncate and write
    daemon._maybe_reload()
    assert daemon.config.trials == ("NCT04280705",) and len(daemon.config.alerts) == 1
    assert "is empty" in caplog.text
    config.write_text(good.replace("'NCT04280705'", "'NCT04280705', 'NCT04252118'"))
    daemon._maybe_reload()  # the finished write is read, even within the same mtime tick
    assert daemon.config.trials == ("NCT04280705", "NCT04252118") and len(daemon.config.alerts) == 1


# -- the refresh lock: import-ictrp and backfill take it (item 7) ---------------------------------

ICTRP_XML = """<?xml version="1.0" encoding="utf-8"?>
<Trials_downloaded_from_ICTRP>
  <Trial>
    <Internal_Number>1</Internal_Number>
    <TrialID>ChiCTR2000029953</TrialID>
    <Public_title>A study of something</Public_title>
    <Recruitment_Status>Recruiting</Recruitment_Status>
  </Trial>
</Trials_downloaded_from_ICTRP>
"""


@pytest.mark.parametrize("command", [["import-ictrp", "export.xml"], ["backfill", "NCT04280705"]])
def test_import_and_backfill_take_the_refresh_lock(tmp_path, command):
    config = write_config(tmp_path)
    (tmp_path / "export.xml").write_text(ICTRP_XML)
    lock = RefreshLock(tmp_path / "t.db")
    lock.acquire()  # a refresh is running
    try:
        code, _out, err = finish(popen(config, *command))
        assert code == 3, err
        assert f"another trialwatch refresh (pid {os.getpid()}) is running" in err
        waiting = popen(config, *command, "--wait")
        time.sleep(2.0)
        assert waiting.poll() is None, "--wait did not wait for the refresh"
        assert not query(tmp_path / "t.db", "SELECT id FROM runs")
    finally:
        lock.release()
    code, _out, err = finish(waiting)
    if command[0] == "import-ictrp":
        assert code == 0, err
        assert query(tmp_path / "t.db", "SELECT status FROM runs") == [("finished",)]
    else:  # the registry is unreachable: the trial fails, the run is closed all the same
        assert code == 1, err
        assert query(tmp_path / "t.db", "SELECT status FROM runs") == [("finished",)]


def test_a_backfill_stopped_by_sigterm_closes_its_run(tmp_path):
    """SIGTERM mid-backfill (a registry that answers slowly): the run is `interrupted`, never left `running`."""
    from pipeline.simulator.corpus import Corpus
    from pipeline.simulator.server import SimulatorServer

    corpus = Corpus(size=6, seed=7)
    with SimulatorServer(corpus) as server:
        config = write_config(tmp_path)
        # every answer 30 s late, read timeout 20 s: the backfill is surely in a request when stopped
        config.write_text(config.read_text().replace(DEAD, server.ctgov_url).replace("timeout = 2", "timeout = 20"))
        server.add_fault({"match": "", "kind": "timeout", "delay": 30})
        nct = [t.trial_id for t in corpus.nct_trials][:2]
        proc = popen(config, "backfill", *nct)
        db = tmp_path / "t.db"
        end = time.monotonic() + 30
        while time.monotonic() < end and not query(db, "SELECT id FROM runs"):
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        code, _out, err = finish(proc, timeout=30)
    assert code != 0
    assert query(db, "SELECT status, note FROM runs") == [("interrupted", "backfill")], err


def test_a_backfill_that_raises_records_its_run_as_failed(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pipeline.cli import cli

    def boom(*args, **kwargs):
        raise RuntimeError("a bug in the history reader")

    monkeypatch.setattr("pipeline.backfill.backfill_trial", boom)
    config = write_config(tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(config), "backfill", "NCT04280705"])
    assert isinstance(result.exception, RuntimeError)
    assert query(tmp_path / "t.db", "SELECT status FROM runs") == [("failed",)]


# -- one daemon per database (items 11 and 18) ---------------------------------------------------


def stop_daemon(proc, timeout=20.0):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return finish(proc, timeout)


def test_ten_daemons_started_at_once_exactly_one_runs(tmp_path):
    config = write_config(tmp_path, ["NCT04280705"])
    procs = [popen(config, "daemon") for _ in range(10)]
    try:
        refused = []
        end = time.monotonic() + 60
        while time.monotonic() < end and len(refused) < 9:
            refused = [p for p in procs if p.poll() is not None]
            time.sleep(0.2)
        time.sleep(1.0)  # any late second winner would still be running now
        running = [p for p in procs if p.poll() is None]
        assert len(running) == 1, f"{len(running)} daemons running on one database"
        for p in procs:
            if p is running[0]:
                continue
            code, _out, err = finish(p)
            assert code == 1, err
            assert f"a trialwatch daemon (pid {running[0].pid}" in err and "already running" in err
            assert "Traceback" not in err
        code, _out, err = stop_daemon(running[0])
        assert code == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_a_stale_pid_of_a_live_unrelated_process_does_not_block_a_new_daemon(tmp_path):
    """After kill -9 the stored PID may belong to another live process (PID 1 in a container)."""
    import json

    from pipeline.store import Store

    config = write_config(tmp_path, ["NCT04280705"])
    db = tmp_path / "t.db"
    first = popen(config, "daemon")
    end = time.monotonic() + 30
    while time.monotonic() < end and not query(db, "SELECT value FROM meta WHERE key = 'daemon' AND value IS NOT NULL"):
        time.sleep(0.1)
    assert str(first.pid) in query(db, "SELECT value FROM meta WHERE key = 'daemon'")[0][0]
    first.kill()  # kill -9: nothing cleaned up
    first.wait(10)
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # the stored PIDs now name a live process that is no daemon
        with Store(db) as store:
            store.set_meta("daemon", json.dumps({"pid": unrelated.pid, "started_at": "2026-11-25T00:00:00Z"}))
        (tmp_path / "t.db.daemon.lock").write_text(f"{unrelated.pid}\n2026-11-25T00:00:00Z\n")
        status = subprocess.run([*TRIALWATCH, "--config", str(config), "status", "--json"], capture_output=True,
                                text=True, timeout=60)
        assert json.loads(status.stdout)["daemon"] == {"running": False}
        second = popen(config, "daemon")
        try:
            time.sleep(1.0)
            end = time.monotonic() + 30
            while time.monotonic() < end and second.poll() is None:
                status = subprocess.run([*TRIALWATCH, "--config", str(config), "status", "--json"],
                                        capture_output=True, text=True, timeout=60)
                if json.loads(status.stdout)["daemon"].get("pid") == second.pid:
                    break
                time.sleep(0.3)
            assert second.poll() is None, f"the new daemon exited: {second.communicate()[1]}"
            assert json.loads(status.stdout)["daemon"]["running"] is True
        finally:
            code, _out, err = stop_daemon(second)
        assert code == 0, err
    finally:
        unrelated.kill()
        unrelated.wait()
