"""Issue 11 item 1: a registry that cannot be connected to is given up for the run, in seconds.

Through the real ``trialwatch refresh`` on loopback: a "wrong port" is a free port
nobody listens on (connection refused).  The run ends within seconds with one line
per source naming it, its ``base_url``, the cause, how many trials were not checked
and the key to fix; exit 1; the trials are failed for the run, never missing, and
the run is no answer for the vanish guard.  One refused connection followed by a
success is only retried, as any transient error.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from pipeline.config import load_config
from pipeline.http_client import RegistryClient, build_http_client
from pipeline.simulator import Corpus, SimulatorServer

from alert_support import free_port
from test_faults_sim import write_config


def tw(config, *args, timeout=120):
    exe = Path(sys.executable).parent / "trialwatch"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pipeline"]
    return subprocess.run([*cmd, "--config", str(config), *args], capture_output=True, text=True, timeout=timeout)


def wrong_port_config(folder: Path, trials: list[str]) -> Path:
    """The default settings (rates, retries, timeouts) with both sources on a port nobody listens on."""
    port = free_port()
    path = folder / "config.toml"
    path.write_text(
        '[database]\npath = "tw.db"\n\n'
        f'[sources.ctgov]\nbase_url = "http://127.0.0.1:{port}/api/v2"\n\n'
        f'[sources.who]\nbase_url = "http://127.0.0.1:{port}"\n\n'
        f'[watch]\ntrials = [{", ".join(repr(t) for t in trials)}]\n'
    )
    return path


def test_an_unreachable_registry_is_given_up_in_seconds_with_one_line_per_source(tmp_path):
    trials = [f"NCT9{n:07d}" for n in range(1, 43)]
    config = wrong_port_config(tmp_path, trials)
    port = load_config(config).sources["who"].base_url.rsplit(":", 1)[1]
    started = time.monotonic()
    result = tw(config, "refresh", "--no-progress")
    took = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert took < 30, took  # was minutes (WHO: 42 pages x 3 attempts at 0.5 requests a second)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        f"ctgov: cannot connect to http://127.0.0.1:{port}/api/v2 (connection refused); 42 trials not checked; "
        "check sources.ctgov.base_url",
        f"who: cannot connect to http://127.0.0.1:{port} (connection refused); 42 trials not checked; "
        "check sources.who.base_url",
    ], result.stderr
    assert "missing 0, failed 84" in result.stdout
    db = sqlite3.connect(tmp_path / "tw.db")
    states = db.execute("SELECT state, fail_streak, count(*) FROM trials GROUP BY 1, 2").fetchall()
    assert states == [("pending", 1, 84)]  # failed for the run, never missing
    # the run's row says why, and few requests went out (3 attempts per source)
    note, requests = db.execute("SELECT note, requests FROM runs").fetchone()
    assert "cannot connect" in note and requests <= 8


def test_the_give_up_is_no_answer_for_the_vanish_guard(tmp_path):
    corpus = Corpus(size=12, seed=1)
    with SimulatorServer(corpus) as server:
        config = write_config(tmp_path, server, corpus.ids)
        assert tw(config.path, "refresh", "--no-progress").returncode == 0
    db = sqlite3.connect(tmp_path / "faults.db")
    with db:
        db.execute("UPDATE trials SET vanish_streak = 1")  # every trial under suspicion
    before = db.execute("SELECT trial_id, source, state, vanish_streak FROM trials ORDER BY 1, 2").fetchall()
    # the simulator is gone: its port now refuses connections
    result = tw(config.path, "refresh", "--no-progress")
    assert result.returncode == 1
    assert "cannot connect to" in result.stderr and "Traceback" not in result.stderr
    after = db.execute("SELECT trial_id, source, state, vanish_streak FROM trials ORDER BY 1, 2").fetchall()
    assert after == before  # still present, the streak neither counted nor reset
    assert db.execute("SELECT count(*) FROM changes").fetchone() == (0,)
    assert {r[0] for r in db.execute("SELECT fail_streak FROM trials")} == {1}


def test_one_refused_connection_then_success_is_only_retried(tmp_path):
    """The server comes up while the client waits to retry: no give-up, the request succeeds."""
    corpus = Corpus(size=3, seed=1)
    port = free_port()
    server = SimulatorServer(corpus, port=port)
    config = write_config(tmp_path, server_stub(port), corpus.ids, ctgov="retries = 3")
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:
            server.start()  # after the first refused attempt

    try:
        with build_http_client() as http:
            client = RegistryClient(config.sources["ctgov"], http, sleep=sleep, backoff_base=0.01)
            response = client.get(config.sources["ctgov"].base_url + "/version")
        assert response.status == 200 and response.attempts == 2
        assert client.unreachable is None
    finally:
        server.stop()


def test_three_refused_attempts_in_a_row_give_the_source_up_and_nothing_more_is_sent(tmp_path):
    from pipeline.errors import SourceUnreachable

    port = free_port()
    config = write_config(tmp_path, server_stub(port), ["NCT90000001"], ctgov="retries = 5")
    with build_http_client() as http:
        client = RegistryClient(config.sources["ctgov"], http, sleep=lambda s: None, backoff_base=0.01)
        try:
            client.get(config.sources["ctgov"].base_url + "/version")
        except SourceUnreachable as exc:
            assert exc.cause == "connection refused"
            assert str(exc) == f"cannot connect to http://127.0.0.1:{port}/api/v2 (connection refused)"
        else:  # pragma: no cover
            raise AssertionError("not given up")
        assert client.requests == 3
        try:
            client.get(config.sources["ctgov"].base_url + "/studies")
        except SourceUnreachable:
            pass
        assert client.requests == 3  # nothing more sent


def test_identical_failures_are_listed_once_with_a_count(tmp_path):
    corpus = Corpus(size=12, seed=1)
    with SimulatorServer(corpus) as server:
        config = write_config(tmp_path, server, corpus.ids, ctgov="retries = 0")
        server.set_faults([{"match": "/api/v2/studies", "kind": "503"}])
        result = tw(config.path, "refresh", "--no-progress", "--source", "ctgov")
    nct = [t for t in corpus.ids if t.startswith("NCT")]
    assert result.returncode == 1
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1, result.stderr
    assert failed[0].startswith(f"failed: {nct[0]}, {nct[1]}, {nct[2]} and {len(nct) - 3} more (ctgov): ")
    assert "HTTP 503" in failed[0] and failed[0].endswith(f"(\u00d7{len(nct)})")


def test_failure_lines_group_identical_errors():
    from pipeline.cli.common import failure_lines

    failures = [("A", "who", "boom"), ("B", "who", "boom"), ("C", "ctgov", "other"), ("D", "who", "boom")]
    assert failure_lines(failures) == [
        "failed: A, B, D (who): boom (\u00d73)",
        "failed: C (ctgov): other",
    ]
    many = [(f"T{i}", "who", f"error {i}") for i in range(25)]
    lines = failure_lines(many)
    assert len(lines) == 21 and lines[-1] == "... and 5 more failures (see the fetch_log table)"


class server_stub:
    """What write_config reads of a simulator, for one that is not (yet) listening."""

    def __init__(self, port: int):
        self.ctgov_url = f"http://127.0.0.1:{port}/api/v2"
        self.who_url = f"http://127.0.0.1:{port}"


def test_connect_cause_names_dns_failure():
    from pipeline.http_client import connect_cause

    try:
        httpx.get("http://does-not-exist.invalid/", timeout=5)
    except httpx.ConnectError as exc:
        assert connect_cause(exc).startswith("host name not resolved")
