"""Issue 11 item 11 (part): messages of deliver --alert, export into a closed pipe, progress
lines, and simulate's port and host, each through the real CLI."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import socket
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.demo import write_demo_config
from pipeline.simulator.corpus import Corpus
from pipeline.simulator.server import SimulatorServer


def command() -> list[str]:
    exe = Path(sys.executable).parent / "trialwatch"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "pipeline"]


@pytest.fixture(scope="module")
def sim_config(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("messages")
    corpus = Corpus(size=12, seed=1)
    with SimulatorServer(corpus) as server:
        yield write_demo_config(tmp, server.ctgov_url, server.who_url, corpus.ids[:9]), corpus


# -- deliver --alert -------------------------------------------------------------------------------


def test_deliver_unknown_alert_lists_the_known_channels(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(
        '[database]\npath = "t.db"\n'
        '[[alerts]]\nchannel = "webhook"\nname = "team-hook"\nurl = "http://127.0.0.1:9/hook"\n'
        f'[[alerts]]\nchannel = "folder"\nname = "inbox"\npath = "{tmp_path / "inbox"}"\n'
    )
    bad = CliRunner().invoke(cli, ["--config", str(config), "deliver", "--alert", "nope"])
    assert bad.exit_code == 2
    assert "no alert rule named 'nope'" in bad.output
    assert "'team-hook' (webhook)" in bad.output and "'inbox' (folder)" in bad.output
    (error,) = [line for line in bad.output.splitlines() if line.startswith("Error")]
    assert error.count("--alert") == 1  # the option named once

    config.write_text('[database]\npath = "t.db"\n')
    none = CliRunner().invoke(cli, ["--config", str(config), "deliver", "--alert", "nope"])
    assert none.exit_code == 2 and "the config has no [[alerts]]" in none.output


# -- export | head -----------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [("export",), ("export", "--format", "csv"), ("changes",)])
def test_output_into_a_closed_pipe_ends_quietly(sim_config, args):
    config, _ = sim_config
    assert CliRunner().invoke(cli, ["--config", str(config), "refresh", "--no-progress"]).exit_code == 0
    # The reader is gone before the first write: every write meets EPIPE.
    proc = subprocess.Popen([*command(), "--config", str(config), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    rc = proc.wait(timeout=60)
    assert rc in (0, 141) and err == ""


def test_export_piped_into_head(sim_config):
    config, _ = sim_config
    assert CliRunner().invoke(cli, ["--config", str(config), "refresh", "--no-progress"]).exit_code == 0
    tw = " ".join(command())
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {tw} --config '{config}' export | head -n 1 >/dev/null; "
                       f"echo rc=${{PIPESTATUS[0]}}"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.stderr == "" and re.search(r"rc=(0|141)\b", done.stdout)


# -- progress ------------------------------------------------------------------------------------------


def test_progress_has_no_first_tick_rate_and_is_cleared_before_result_lines(sim_config):
    config, corpus = sim_config
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    ids = corpus.ids[:3]
    proc = subprocess.Popen([*command(), "--config", str(config), "backfill", "--progress", *ids],
                            stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    raw = b"".join(chunks).decode()
    assert "backfill: 1/3" in raw and "000.0/s" not in raw
    for trial_id in ids:
        at = raw.index(f"{trial_id}: ")
        # what precedes each result line is a cleared line or a new line, never a progress text
        assert raw[:at].endswith("\r\x1b[K") or raw[:at].endswith("\n") or at == 0, raw[max(0, at - 40):at + 20]
    # After the run nothing is left of the progress line.
    assert raw.rstrip("\r\n").endswith("\r\x1b[K") or not raw.rstrip().splitlines()[-1].startswith("backfill:")


def test_progress_log_lines_start_without_a_rate(sim_config):
    config, _ = sim_config
    result = CliRunner().invoke(cli, ["--config", str(config), "refresh", "--progress"])
    assert result.exit_code == 0
    lines = [line for line in result.stderr.splitlines() if re.match(r"^(ctgov|who): \d+/\d+", line)]
    assert lines and "/s" not in lines[0] and "000.0/s" not in result.stderr


# -- simulate --------------------------------------------------------------------------------------------


def test_simulate_names_the_port_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([*command(), "simulate", "--port", str(port), "--size", "3"],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and f"port {port}" in done.stderr and "already in use" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "example.org"])
def test_simulate_refuses_a_host_outside_loopback_unless_asked(host):
    done = subprocess.run([*command(), "simulate", "--host", host, "--size", "3"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not a loopback address" in done.stderr and "--allow-remote" in done.stderr


def test_simulate_allow_remote_gets_past_the_host_check():
    # 192.0.2.7 (TEST-NET-1) is not an address of this machine: binding fails, after the check.
    done = subprocess.run([*command(), "simulate", "--host", "192.0.2.7", "--allow-remote", "--size", "3"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "cannot listen on 192.0.2.7" in done.stderr
    assert "loopback" not in done.stderr
