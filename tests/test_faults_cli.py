"""A locked database and a full disk, through the real ``trialwatch refresh``.

Contract (README, exit codes): the command stops with exit code 1 and one line
``Error: ...`` saying what happened and what to do (no traceback); the trial being
written when the fault hit is rolled back, the trials before it are whole, the
database passes every invariant of :mod:`dbcheck`; once the lock is gone or space is
freed, the next run completes the work.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pipeline.simulator import Corpus, SimulatorServer

from dbcheck import check_invariants
from test_faults_sim import write_config
from test_store_faults import hold_lock


def trialwatch(config, *args, **kw):
    exe = shutil.which("trialwatch", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "pipeline"]
    return subprocess.run([*cmd, "--config", str(config), *args], capture_output=True, text=True, timeout=120, **kw)


def refresh_in_background(config):
    exe = shutil.which("trialwatch", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "pipeline"]
    return subprocess.Popen([*cmd, "--config", str(config), "refresh", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_one_line_error(stderr: str, needle: str):
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: ") and needle in lines[-1], stderr


@pytest.fixture
def server(request):
    corpus = Corpus(size=getattr(request, "param", 60), seed=1, change_rate=0.2)
    with SimulatorServer(corpus) as s:
        yield s


@pytest.mark.parametrize("server", [30], indirect=True)
def test_database_locked_by_another_process(tmp_path, server):
    corpus = server.corpus
    config = write_config(tmp_path, server, corpus.ids, who="concurrency = 1\nrequests_per_second = 30",
                          database='path = "faults.db"\nbusy_timeout = 1')
    db = config.database_path
    assert trialwatch(config.path, "refresh").returncode == 0
    before = check_invariants(db)

    # locked before the run starts: nothing is written at all
    holder = hold_lock(db)
    try:
        started = time.monotonic()
        result = trialwatch(config.path, "refresh")
        assert time.monotonic() - started < 10  # busy_timeout = 1: one wait, not one per write
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "is locked by another process")
    assert check_invariants(db) == before

    # locked in the middle of a run (WHO pages come at 30 a second): the run stops at
    # the next write, what was written before is whole
    corpus.advance(1)
    proc = refresh_in_background(config.path)
    time.sleep(0.8)
    holder = hold_lock(db)
    try:
        started = time.monotonic()
        out, err = proc.communicate(timeout=60)
        assert time.monotonic() - started < 10
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 1, (out, err)
    assert_one_line_error(err, "is locked by another process")
    check_invariants(db)

    # the lock is gone: the next run completes the work and marks the stopped run
    result = trialwatch(config.path, "refresh")
    assert result.returncode == 0, result.stderr
    assert ", failed 0" in result.stdout
    check_invariants(db)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MB tmpfs (root only); skips where mounting is not allowed."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def _grow(mount: Path, size: str):
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True, timeout=30)


def test_disk_fills_up_during_a_run(tmp_path, server, tiny_disk):
    corpus = server.corpus
    config = write_config(tmp_path, server, corpus.ids, database=f'path = "{tiny_disk}/faults.db"\nbusy_timeout = 1')
    db = config.database_path
    result = trialwatch(config.path, "refresh")  # ~3 MB of snapshots do not fit in 1 MB
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "disk full")
    assert "nothing was half-written" in result.stderr
    partial = check_invariants(db)
    assert 0 < partial["snapshots"] < 2 * len(corpus.ids)  # some trials whole, the rest not at all

    _grow(tiny_disk, "64m")  # space freed
    result = trialwatch(config.path, "refresh")
    assert result.returncode == 0, result.stderr
    counts = check_invariants(db)
    nct = [t for t in corpus.ids if t.startswith("NCT")]
    assert counts["trials"] == counts["snapshots"] == 2 * len(nct) + len(corpus.ids) - len(nct)


def test_disk_already_full_before_the_run(tmp_path, server, tiny_disk):
    try:
        with open(tiny_disk / "filler", "wb") as f:
            while True:
                f.write(b"x" * 4096)
                f.flush()
    except OSError:
        pass
    config = write_config(tmp_path, server, server.corpus.ids, database=f'path = "{tiny_disk}/faults.db"')
    for args in (("refresh",), ("show", server.corpus.ids[0]), ("changes",)):
        result = trialwatch(config.path, *args)
        assert result.returncode == 1, (args, result.stderr)
        assert_one_line_error(result.stderr, "disk full")  # was an OSError traceback from the lock file
    (tiny_disk / "filler").unlink()
    _grow(tiny_disk, "64m")
    result = trialwatch(config.path, "refresh")
    assert result.returncode == 0, result.stderr
    check_invariants(config.database_path)


@pytest.mark.parametrize("server", [30], indirect=True)
def test_sigterm_during_a_long_retry_wait_stops_at_once(tmp_path, server):
    """SIGTERM (systemd, docker stop) must not wait out a registry's Retry-After."""
    import signal

    config = write_config(tmp_path, server, server.corpus.ids, who="retries = 3\nmax_retry_wait = 120")
    assert trialwatch(config.path, "refresh").returncode == 0
    server.set_faults([{"match": "/Trial2.aspx", "kind": "503", "retry_after": 30}])
    proc = refresh_in_background(config.path)
    time.sleep(1.5)  # the WHO workers are now waiting out their 30 s
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - started < 5  # was the full backoff: ~2 minutes
    assert "Traceback" not in err
    assert "[interrupted]" in out and "deferred to next run" in out
    assert ", failed 0" in out  # stopped, not failed: the trials are deferred
    check_invariants(config.database_path)
    server.clear_faults()
    result = trialwatch(config.path, "refresh")
    assert result.returncode == 0 and ", failed 0" in result.stdout
    import sqlite3

    conn = sqlite3.connect(config.database_path)
    statuses = [s for (s,) in conn.execute("SELECT status FROM runs ORDER BY id")]
    conn.close()
    assert statuses == ["finished", "interrupted", "finished"]
