"""Issue 11 item 7: ``refresh`` raises failure alerts itself; ``daemon --once`` exits as ``refresh`` does.

Through the real commands (subprocesses) on the simulator.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from pipeline.simulator import Corpus, SimulatorServer

from test_faults_sim import write_config


def tw(config, *args):
    exe = Path(sys.executable).parent / "trialwatch"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pipeline"]
    return subprocess.run([*cmd, "--config", str(config), *args], capture_output=True, text=True, timeout=120)


def with_schedule(config_path: Path, extra: str = "") -> None:
    text = config_path.read_text()
    config_path.write_text(
        text + '\n[schedule]\nctgov = "0 0 1 1 *"\nwho = "0 0 1 1 *"\njitter = 0\nfailure_alert_after = 2\n' + extra
    )


def test_refresh_raises_failure_alerts_itself(tmp_path):
    corpus = Corpus(size=6, seed=1)
    nct = [t for t in corpus.ids if t.startswith("NCT")]
    with SimulatorServer(corpus) as server:
        config = write_config(tmp_path, server, nct, ctgov="retries = 0")
        with_schedule(config.path)
        server.set_faults([{"match": "/api/v2/studies", "kind": "503"}])
        first = tw(config.path, "refresh", "--no-progress", "--source", "ctgov")
        assert first.returncode == 1 and "failure alert" not in first.stderr
        second = tw(config.path, "refresh", "--no-progress", "--source", "ctgov")
        assert second.returncode == 1
        assert f"failure alert raised (ctgov): {nct[0]}, {nct[1]}, {nct[2]}" in second.stderr, second.stderr
        db = sqlite3.connect(tmp_path / "faults.db")
        events = db.execute("SELECT trial_id, kind, streak FROM failure_events ORDER BY trial_id").fetchall()
        assert events == [(t, "failing", 2) for t in sorted(nct)]  # without `report` or the daemon
        server.set_faults([])
        recovered = tw(config.path, "refresh", "--no-progress", "--source", "ctgov")
        assert recovered.returncode == 0 and f"recovered (ctgov): {nct[0]}" in recovered.stderr
        assert db.execute("SELECT count(*) FROM failure_events WHERE kind = 'recovered'").fetchone() == (len(nct),)


def test_daemon_once_exits_as_refresh_does(tmp_path):
    corpus = Corpus(size=6, seed=1)
    nct = [t for t in corpus.ids if t.startswith("NCT")]
    with SimulatorServer(corpus) as server:
        config = write_config(tmp_path, server, [*nct, "NCT99999999"], ctgov="retries = 0")
        with_schedule(config.path)
        # a trial the registry has never had is missing, not a failure: exit 0 from both
        assert tw(config.path, "refresh", "--no-progress").returncode == 0
        once = tw(config.path, "daemon", "--once")
        assert once.returncode == 0, once.stderr
        # trials failing: exit 1 from both
        server.set_faults([{"match": "/api/v2/studies", "kind": "503"}])
        assert tw(config.path, "refresh", "--no-progress").returncode == 1
        once = tw(config.path, "daemon", "--once")
        assert once.returncode == 1, once.stderr
    # the registry unreachable: exit 1 from both
    assert tw(config.path, "refresh", "--no-progress").returncode == 1
    assert tw(config.path, "daemon", "--once").returncode == 1
