"""Issue 11 item 2: ``trialwatch check`` (and ``deliver --test``) through the real CLI.

Real sockets: the simulator for the registries, a webhook receiver and a folder for
the channels, a free loopback port for a registry that is not there.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline.simulator import Corpus, SimulatorServer

from alert_support import HookServer, free_port
from test_faults_sim import write_config


def tw(config, *args):
    exe = Path(sys.executable).parent / "trialwatch"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pipeline"]
    return subprocess.run([*cmd, "--config", str(config), *args], capture_output=True, text=True, timeout=120)


def test_check_says_ok_for_a_working_setup_and_tests_each_channel(tmp_path):
    corpus = Corpus(size=6, seed=1)
    with SimulatorServer(corpus) as server, HookServer() as hook:
        config = write_config(tmp_path, server, corpus.ids)
        reports = tmp_path / "reports"
        with open(config.path, "a") as f:
            f.write(f'\n[[alerts]]\nchannel = "webhook"\nname = "hook"\nurl = "{hook.url}"\n'
                    f'\n[[alerts]]\nchannel = "folder"\nname = "box"\npath = "{reports}"\nformat = "text"\n')
        plain = tw(config.path, "check")
        assert plain.returncode == 0, plain.stdout + plain.stderr
        lines = plain.stdout.splitlines()
        assert lines[0].startswith("config: ok (") and "6 trials watched" in lines[0]
        assert lines[1].startswith(f"ctgov: ok {server.ctgov_url}: API ")
        assert lines[2].startswith(f"who: ok {server.who_url}: portal answered: the page of {corpus.ids[0]}")
        assert len(lines) == 3 and hook.requests == []  # no channel touched without --channels

        full = tw(config.path, "check", "--channels")
        assert full.returncode == 0, full.stdout + full.stderr
        lines = full.stdout.splitlines()
        assert lines[3].startswith("alert 'hook' (webhook): ok test message sent")
        assert lines[4].startswith("alert 'box' (folder): ok test message sent")
        (post,) = hook.requests
        assert post["body"]["test"] is True and post["body"]["changes"] == [] and "TEST" in post["body"]["summary"]
        (written,) = list(reports.iterdir())
        assert "TEST message" in written.read_text()

        test = tw(config.path, "deliver", "--test", "--alert", "hook")
        assert test.returncode == 0 and test.stdout.startswith("alert 'hook' (webhook): ok test message sent")
        assert len(hook.requests) == 2 and len(list(reports.iterdir())) == 1
    # not recorded as a delivery: the database is not even opened (no channel row, no cursor)
    assert not (tmp_path / "faults.db").exists()


def test_check_fails_one_line_per_item_and_exits_1(tmp_path):
    corpus = Corpus(size=3, seed=1)
    dead = free_port()
    with SimulatorServer(corpus) as server:
        config = write_config(tmp_path, server, corpus.ids)
        text = config.path.read_text().replace(server.ctgov_url, f"http://127.0.0.1:{dead}/api/v2")
        text += f'\n[[alerts]]\nchannel = "webhook"\nname = "down"\nurl = "http://127.0.0.1:{dead}/hook"\ntimeout = 2\n'
        config.path.write_text(text)
        result = tw(config.path, "check", "--channels")
        assert result.returncode == 1
        lines = result.stdout.splitlines()
        assert lines[0].startswith("config: ok")
        assert lines[1] == (f"ctgov: FAIL cannot connect to http://127.0.0.1:{dead}/api/v2 (connection refused); "
                            "check sources.ctgov.base_url")
        assert lines[2].startswith("who: ok")
        assert lines[3].startswith("alert 'down' (webhook): FAIL ")
        assert len(lines) == 4 and "Traceback" not in result.stderr
        down = tw(config.path, "deliver", "--test")
        assert down.returncode == 1 and down.stdout.startswith("alert 'down' (webhook): FAIL ")


def test_check_reports_a_config_that_does_not_validate(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[sources.ctgov]\nrequests_per_second = "fast"\n')
    result = tw(path, "check")
    assert result.returncode == 1
    assert result.stdout.startswith("config: FAIL ") and "requests_per_second" in result.stdout


def test_check_names_a_wrong_base_url_that_answers_404(tmp_path):
    corpus = Corpus(size=3, seed=1)
    with SimulatorServer(corpus) as server:
        config = write_config(tmp_path, server, corpus.ids)
        config.path.write_text(config.path.read_text().replace(server.ctgov_url, server.ctgov_url + "/nope"))
        result = tw(config.path, "check")
    assert result.returncode == 1
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("ctgov:")]
    assert line.startswith("ctgov: FAIL ") and "404" in line and "sources.ctgov.base_url" in line
