"""``trialwatch serve`` for real: a subprocess on a loopback port, and headless Chromium.

Chromium (Debian package ``chromium``) loads the trial page and the change log, the
rendered DOM is checked, and screenshots are saved at 1280 and 390 px wide (in the
test's tmp_path).  CI installs Chromium (``.ci/run``); the test skips, saying so, only
where it is not installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serve_support import EUDRACT, HOSTILE, TRIAL, build_database

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--disable-dev-shm-usage"]


def trialwatch_command() -> list[str]:
    exe = shutil.which("trialwatch", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "pipeline"]


def write_config(tmp_path: Path, db: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\npath = "{db}"\n[watch]\ntrials = ["{TRIAL}"]\n')
    return config


def test_serve_without_datasette_says_how_to_install(tmp_path):
    config = write_config(tmp_path, build_database(tmp_path / "t.db"))
    code = ("import sys; sys.modules['datasette'] = None; sys.argv = ['trialwatch', '--config', sys.argv[1], 'serve'];"
            " from pipeline.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: trialwatch serve needs Datasette: pip install 'trialwatch[serve]' (or: pip install datasette)"]


def test_serve_without_a_database_says_so(tmp_path):
    pytest.importorskip("datasette")
    result = subprocess.run([*trialwatch_command(), "--config", str(write_config(tmp_path, tmp_path / "no.db")),
                             "serve", "--port", "0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "no database at" in result.stderr and not (tmp_path / "no.db").exists()


@pytest.fixture
def server(tmp_path):
    """A real ``trialwatch serve`` on a free loopback port; yields its base URL and database."""
    pytest.importorskip("datasette", reason="the serve extra is not installed: pip install -e '.[serve]'")
    db = build_database(tmp_path / "t.db")
    proc = subprocess.Popen([*trialwatch_command(), "--config", str(write_config(tmp_path, db)), "serve",
                             "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
        assert match, line
        base = match.group(1)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "trialwatch/current_trials.json", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "serve did not answer"
            time.sleep(0.2)
        yield base, db
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium is not installed here (Debian: apt-get install -y chromium; CI's .ci/run does it)")


def browse(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(profile)})


def test_trial_page_and_change_log_in_chromium(server, tmp_path):
    base, db = server
    profile = tmp_path / "chromium-profile"
    dom = browse(f"{base}trial/{TRIAL}", profile, "--dump-dom").stdout
    assert "Remdesivir for adults with COVID-19" in dom and "Active, not recruiting" in dom
    assert dom.count('class="tw-event ') == 7 and "tw-prominent" in dom and "<ins>80</ins>" in dom
    assert 'id="diff"' in dom and "Inclusion criteria" in dom
    assert "Open flags and discrepancies (2)" in dom and f"WHO ICTRP {EUDRACT}" in dom  # the linked record
    assert "&lt;script&gt;alert('flag')&lt;/script&gt;" in dom and "<script>alert" not in dom

    dom = browse(f"{base}trial/{HOSTILE}", profile, "--dump-dom").stdout
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in dom  # shown as text ...
    assert "<script>alert" not in dom and "<img src=\"x\"" not in dom  # ... never run as markup

    dom = browse(f"{base}trialwatch/change_log", profile, "--dump-dom").stdout
    assert f'href="/trial/{TRIAL}"' in dom and f'href="/trial/{HOSTILE}"' in dom
    assert "Active, not recruiting" in dom and "<script>alert" not in dom
    assert 'data-column="significance"' in dom

    dom = browse(f"{base}trialwatch/current_trials", profile, "--dump-dom").stdout
    assert '<span class="tw-flag">results overdue</span>' in dom and 'data-column="open_flags"' in dom

    for width in (1280, 390):
        for name, path in (("trial", f"trial/{TRIAL}"), ("changes", "trialwatch/change_log"),
                           ("trials", "trialwatch/current_trials")):
            shot = tmp_path / f"{name}-{width}.png"
            browse(f"{base}{path}", profile, f"--screenshot={shot}", f"--window-size={width},1800")
            assert shot.exists() and shot.stat().st_size > 10_000, shot
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # serving never holds the writer up: the daemon's kind of write goes through at once
    from pipeline.store import Store

    started = time.monotonic()
    with Store(db, timeout=2) as store:
        store.save_watch_tags({"covid": (TRIAL,), "later": (HOSTILE,)})
    assert time.monotonic() - started < 2
    assert "later" in httpx.get(base + "trialwatch/current_trials.json?_shape=array", timeout=10).text
