"""SIGKILL ``trialwatch refresh`` at random points, again and again; lose nothing.

The real console script runs as a subprocess against the simulator (a corpus big
enough that a refresh takes a second or two, with upstream changes every few runs so
there are snapshots and changes to write when the kill lands).  After every kill the
database must pass the invariants of :mod:`dbcheck` (integrity check, no snapshot
without its changes or the reverse, ``trials`` pointing at the latest snapshot); at
the end one uninterrupted run completes the work and the database agrees, trial by
trial, with a fresh database built from the registry as it now stands.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.simulator import Corpus, SimulatorServer

from dbcheck import check_history, check_invariants
from test_faults_sim import write_config

KILLS = int(os.environ.get("TRIALWATCH_CRASH_KILLS", "20"))
CORPUS_SIZE = 120


def trialwatch_cmd() -> list[str]:
    exe = shutil.which("trialwatch", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "pipeline"]


def refresh_proc(config_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*trialwatch_cmd(), "--config", str(config_path), "refresh", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def run_to_end(config_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*trialwatch_cmd(), "--config", str(config_path), "refresh", "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )


def current_hashes(db: Path) -> dict[tuple[str, str], tuple[str, str | None]]:
    conn = sqlite3.connect(db)
    try:
        return {(t, s): (state, h) for t, s, state, h in conn.execute(
            "SELECT trial_id, source, state, content_hash FROM trials")}
    finally:
        conn.close()


@pytest.mark.slow
def test_sigkill_loop_loses_nothing(tmp_path):
    rng = random.Random(int(os.environ.get("TRIALWATCH_CRASH_SEED", "5")))
    corpus = Corpus(size=CORPUS_SIZE, seed=3, change_rate=0.1)
    nct = [t for t in corpus.ids if t.startswith("NCT")]
    expected_rows = 2 * len(nct) + (len(corpus.ids) - len(nct))
    with SimulatorServer(corpus) as server:
        config = write_config(tmp_path, server, corpus.ids, ctgov="ids_per_request = 20", who="concurrency = 4")
        db = config.database_path
        # one whole run first: its length sets the window the kills land in (any machine)
        first = run_to_end(config.path)
        assert first.returncode == 0, first.stderr
        corpus.advance(1)
        started = time.monotonic()
        second = run_to_end(config.path)  # a typical later run: mostly unchanged trials
        full_run = time.monotonic() - started
        assert second.returncode == 0, second.stderr
        check_invariants(db)
        started = time.monotonic()
        kills = mid_run_kills = attempts = 0
        finished_runs = 2
        while kills < KILLS:
            attempts += 1
            assert attempts < KILLS * 3, "the refresh keeps finishing before the kill: make the corpus bigger"
            if attempts % 3 == 1:
                corpus.advance(1)  # upstream changes for the next runs to record (and a
                # killed run leaves work undone, so later runs have new snapshots to write)
            runs_before = _count(db, "runs")
            proc = refresh_proc(config.path)
            time.sleep(rng.uniform(0.2, 0.95 * full_run))  # from start-up to the last writes
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            out, err = proc.communicate(timeout=60)
            if proc.returncode == -signal.SIGKILL:
                mid_run_kills += _count(db, "runs") > runs_before
            else:
                finished_runs += 1
                assert proc.returncode == 0, err
                assert "Traceback" not in err
            if db.exists():
                check_invariants(db)
        crash_time = time.monotonic() - started
        assert mid_run_kills >= KILLS // 2, f"only {mid_run_kills} kills landed inside a run"

        # one uninterrupted run completes the work
        final = run_to_end(config.path)
        assert final.returncode == 0, final.stderr
        assert "Traceback" not in final.stderr
        counts = check_invariants(db)
        check_history(db)
        assert counts["trials"] == expected_rows
        states = current_hashes(db)
        assert all(state in ("present", "missing") for state, _ in states.values()), "a trial never fetched"
        deleted = {t for t in corpus.ids if corpus.get(t).deleted}
        assert {t for (t, _), (state, _) in states.items() if state == "missing"} == deleted
        conn = sqlite3.connect(db)
        assert conn.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()[0] == 0
        interrupted = conn.execute("SELECT count(*) FROM runs WHERE status = 'interrupted'").fetchone()[0]
        conn.close()
        assert 0 < interrupted <= mid_run_kills  # a kill can also land after the run's last write

        # nothing left to do: the next run finds the registry exactly as stored ...
        again = run_to_end(config.path)
        assert again.returncode == 0 and ", new 0," in again.stdout and ", changed 0," in again.stdout, again.stdout
        # ... and a database built from scratch now holds the same current records
        fresh_dir = tmp_path / "fresh"
        fresh_dir.mkdir()
        fresh = write_config(fresh_dir, server, corpus.ids, ctgov="ids_per_request = 20", who="concurrency = 4")
        assert run_to_end(fresh.path).returncode == 0
        reference = current_hashes(fresh.database_path)
        ours = current_hashes(db)
        assert set(reference) == set(ours)
        for key, (state, chash) in reference.items():
            if state == "present":
                assert ours[key] == (state, chash), f"{key}: stored record differs from the registry's"
            else:
                assert state == "missing" and ours[key][0] == "missing", key
        print(f"{kills} kills ({mid_run_kills} inside a run, {finished_runs} runs finished; "
              f"a whole run {full_run:.1f}s) in {crash_time:.0f}s")


def _count(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()
