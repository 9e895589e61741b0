"""Hostile and broken configuration and trial IDs, through the real command line.

Every case runs the installed ``trialwatch`` in a subprocess and checks the contract
of the README: exit code 2, a one-line message naming the key path (no traceback),
and nothing written: no database, no lock file, the config file untouched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.config import parse_config
from pipeline.errors import ConfigError


def trialwatch(*args, cwd=None, timeout=60):
    exe = shutil.which("trialwatch", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "pipeline"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def assert_nothing_written(folder: Path, config: Path, before: bytes):
    left = sorted(p.name for p in folder.iterdir())
    assert left == [config.name], f"files written next to the config: {left}"
    assert config.read_bytes() == before


def assert_clean_error(result, *needles):
    code = getattr(result, "returncode", getattr(result, "exit_code", None))
    assert code == 2, (code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


# (TOML text, key path the message must name).  A watched trial is always present so a
# refresh would have work to do (and something to write) if the config got through.
BAD_CONFIGS = [
    # unknown keys, at every level
    ('colour = "red"', "colour"),
    ("[databse]\npath = 'x.db'", "databse"),
    ("[database]\npth = 'x.db'", "database.pth"),
    ("[sources.pubmed]\nbase_url = 'https://x.org'", "sources.pubmed"),
    ("[sources.ctgov]\nbaseurl = 'https://x.org'", "sources.ctgov.baseurl"),
    ("[sources.who]\npage_size = 10", "sources.who.page_size"),
    ("[schedule]\nweekly = '0 0 * * 0'", "schedule.weekly"),
    ("[[alerts]]\nchannel = 'folder'\npath = 'out'\ncolour = 'red'", "alerts[0].colour"),
    ("[[watch.queries]]\ncond = 'covid'\nsort = 'date'", "watch.queries[0].sort"),
    # wrong types
    ("sources = 3", "sources"),
    ("[database]\npath = 3", "database.path"),
    ("[database]\nfetch_log_days = '90'", "database.fetch_log_days"),
    ("[sources.ctgov]\ntimeout = 'fast'", "sources.ctgov.timeout"),
    ("[sources.ctgov]\nenabled = 'yes'", "sources.ctgov.enabled"),
    ("[sources.ctgov]\nretries = 2.5", "sources.ctgov.retries"),
    ("[sources.who]\nconcurrency = true", "sources.who.concurrency"),
    ("[sources.ctgov]\nuser_agent = ['a']", "sources.ctgov.user_agent"),
    ("[schedule]\njitter = 1.5", "schedule.jitter"),
    ("[watch]\ntags = 3", "watch.tags"),                      # was a TypeError traceback
    ("[watch.tags]\nlung = 'NCT04252118'", "watch.tags.lung"),
    ("[[alerts]]\nchannel = 'email'\nsmtp_host = 'h'\nfrom = 'a@b'\nto = 'c@d'", "alerts[0].to"),
    # out-of-range and non-finite numbers (TOML has inf and nan)
    ("[sources.ctgov]\ntimeout = nan", "sources.ctgov.timeout"),            # passed every check
    ("[sources.ctgov]\nmax_response_mb = inf", "sources.ctgov.max_response_mb"),  # OverflowError
    ("[sources.ctgov]\nrun_budget = -inf", "sources.ctgov.run_budget"),
    ("[sources.ctgov]\ntimeout = 1e12", "sources.ctgov.timeout"),           # OverflowError in sleep
    ("[sources.ctgov]\nrequests_per_second = 1e-300", "sources.ctgov.requests_per_second"),
    ("[sources.ctgov]\nrequests_per_second = 0", "sources.ctgov.requests_per_second"),
    ("[sources.ctgov]\nconcurrency = 0", "sources.ctgov.concurrency"),
    ("[sources.ctgov]\nids_per_request = 5000", "sources.ctgov.ids_per_request"),
    ("[schedule]\njitter = -5", "schedule.jitter"),
    ("[database]\nfetch_log_days = -1", "database.fetch_log_days"),
    # bad cron expressions
    ("[schedule]\nctgov = 'every weekday'", "schedule.ctgov"),
    ("[schedule]\nwho = '61 * * * *'", "schedule.who"),
    ("[schedule]\nwho = '* * * * * * *'", "schedule.who"),
    ("[schedule]\nctgov = ''", "schedule.ctgov"),
    ("[schedule]\nctgov = '0 0 31 2 *'", "schedule.ctgov"),                 # valid fields, never fires
    # bad URLs
    ("[sources.ctgov]\nbase_url = 'ftp://example.org'", "sources.ctgov.base_url"),
    ("[sources.ctgov]\nbase_url = 'example.org/api'", "sources.ctgov.base_url"),
    ("[sources.ctgov]\nbase_url = 'http://'", "sources.ctgov.base_url"),
    ("[sources.ctgov]\nbase_url = 'http://[::1'", "sources.ctgov.base_url"),
    ("[sources.ctgov]\nbase_url = 'http://example.org:99999'", "sources.ctgov.base_url"),
    ("[sources.ctgov]\nbase_url = 'javascript:alert(1)'", "sources.ctgov.base_url"),
    ("[sources.who]\nbase_url = 'http://exa mple.org'", "sources.who.base_url"),
    ('[sources.ctgov]\nbase_url = "http://127.0.0.1:9/\\u0000x"', "sources.ctgov.base_url"),  # httpx.InvalidURL
    ("[[alerts]]\nchannel = 'webhook'\nurl = 'file:///etc/passwd'", "alerts[0].url"),
    # injected characters in strings that reach a path or a header
    ('[database]\npath = "a\\u0000b.db"', "database.path"),                # ValueError traceback
    ('[sources.ctgov]\nuser_agent = "x\\r\\nX-Evil: 1"', "sources.ctgov.user_agent"),
    ('[sources.ctgov]\nuser_agent = "trialwatch \u00e9t\u00e9"', "sources.ctgov.user_agent"),  # UnicodeEncodeError
    # bad trial IDs in the config
    ("[watch]\ntrials = ['NCT1']", "watch.trials"),
    ("[watch]\ntrials = [\"NCT04252118'; DROP TABLE trials;--\"]", "watch.trials"),
    ("[watch]\ntrials = ['NCT0425211\uff18']", "watch.trials"),
    ("[watch]\ntrials = ['PUBMED12345']", "watch.trials"),
    ("[watch]\ntrials = [1]", "watch.trials"),
    ("[watch]\ntrials = 'NCT04252118'", "watch.trials"),
]


def _with_watchlist(text: str) -> str:
    if "[watch]" in text:
        return text
    # top-level keys must come before the first table header
    head = "" if text.lstrip().startswith("[") else text + "\n"
    body = text if head == "" else ""
    return head + body + "\n[watch]\ntrials = ['NCT04252118', 'ISRCTN83971151']\n"


@pytest.mark.parametrize("text,key", BAD_CONFIGS, ids=[k + f"-{i}" for i, (_, k) in enumerate(BAD_CONFIGS)])
def test_bad_config_is_rejected_before_anything_is_written(tmp_path, text, key):
    # The pure check first (fast, exact key), then the real CLI for a sample below.
    import tomllib

    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(_with_watchlist(text)), base_dir=tmp_path)
    assert info.value.key is not None and info.value.key.startswith(key.split("[")[0])
    assert key in str(info.value)


@pytest.mark.parametrize("text,key", BAD_CONFIGS, ids=[k + f"-{i}" for i, (_, k) in enumerate(BAD_CONFIGS)])
def test_bad_config_through_the_cli_refresh(tmp_path, text, key):
    """In-process through click (the same code path as the console script), for speed."""
    config = tmp_path / "config.toml"
    config.write_text(_with_watchlist(text) + "\n", encoding="utf-8")
    before = config.read_bytes()
    result = CliRunner().invoke(cli, ["--config", str(config), "refresh"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert_clean_error(result, key)
    assert_nothing_written(tmp_path, config, before)


#: A sample of the cases above through the installed console script in a subprocess.
SUBPROCESS_SAMPLE = [0, 9, 18, 21, 22, 24, 35, 43, 45, 46, 47, 50]


@pytest.mark.parametrize("index", SUBPROCESS_SAMPLE)
def test_bad_config_through_the_console_script(tmp_path, index):
    text, key = BAD_CONFIGS[index]
    config = tmp_path / "config.toml"
    config.write_text(_with_watchlist(text) + "\n", encoding="utf-8")
    before = config.read_bytes()
    result = trialwatch("--config", str(config), "refresh")
    assert_clean_error(result, key)
    assert_nothing_written(tmp_path, config, before)


@pytest.mark.parametrize(
    "args",
    [("refresh",), ("watch", "add", "NCT04280705"), ("watch", "remove", "NCT04252118"), ("watch", "list"),
     ("show", "NCT04252118"), ("changes",), ("history", "NCT04252118")],
)
def test_every_command_validates_the_config_first(tmp_path, args):
    config = tmp_path / "config.toml"
    config.write_text("[watch]\ntrials = ['NCT04252118']\n[sources.ctgov]\ntimeout = nan\n")
    before = config.read_bytes()
    result = trialwatch("--config", str(config), *args)
    assert_clean_error(result, "sources.ctgov.timeout")
    assert_nothing_written(tmp_path, config, before)


def test_unreadable_config_files(tmp_path):
    folder = tmp_path / "cfgdir"
    folder.mkdir()
    cases = {
        "a folder": (folder, "cannot read config file"),
        "absent": (tmp_path / "absent.toml", "config file not found"),
        "dangling symlink": (tmp_path / "link.toml", "config file not found"),
        "not UTF-8": (tmp_path / "latin1.toml", "not UTF-8"),
        "invalid TOML": (tmp_path / "broken.toml", "invalid TOML"),
        "binary": (tmp_path / "binary.toml", "config"),
    }
    (tmp_path / "link.toml").symlink_to(tmp_path / "nowhere.toml")
    (tmp_path / "latin1.toml").write_bytes("[watch]\ntrials = ['NCT04252118'] # caf\u00e9\n".encode("latin-1"))
    (tmp_path / "broken.toml").write_text("[watch\ntrials = [")
    (tmp_path / "binary.toml").write_bytes(b"\x00\x01\x02\xff\xfe" * 100)
    for name, (path, needle) in cases.items():
        result = trialwatch("--config", str(path), "refresh", cwd=tmp_path)
        assert result.returncode == 2, (name, result.stderr)
        assert "Traceback" not in result.stderr and needle in result.stderr, (name, result.stderr)
    assert not list(tmp_path.glob("*.db*")) and not list(folder.iterdir())


def test_config_without_read_permission(tmp_path):
    """chmod 000: as root (which reads any file) the command runs as user nobody."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="tw-perm-"))
    folder.chmod(0o777)
    try:
        config = folder / "config.toml"
        config.write_text("[watch]\ntrials = ['NCT04252118']\n")
        config.chmod(0)
        exe = shutil.which("trialwatch", path=str(Path(sys.executable).parent))
        cmd = [exe] if exe else [sys.executable, "-m", "pipeline"]
        as_nobody = (lambda: os.setuid(65534)) if os.geteuid() == 0 else None
        try:
            probe = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=60,
                                   preexec_fn=as_nobody, cwd=folder)
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"cannot run as another user here: {exc}")
        if probe.returncode != 0:
            pytest.skip(f"user nobody cannot run the installed command here: {probe.stderr[-200:]}")
        result = subprocess.run([*cmd, "--config", str(config), "refresh"], capture_output=True, text=True,
                                timeout=60, preexec_fn=as_nobody, cwd=folder)
        assert result.returncode == 2, result.stderr
        assert "cannot read config file" in result.stderr and "Permission denied" in result.stderr
        assert "Traceback" not in result.stderr
        assert sorted(p.name for p in folder.iterdir()) == ["config.toml"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


HOSTILE_IDS = [
    "NCT123",                                   # malformed
    "NCT042521189",                             # one digit too many
    "NCT04252118;rm -rf /",                     # shell
    "NCT04252118' OR 1=1--",                    # SQL
    "NCT04252118&TrialID=ChiCTR2100045397",     # query-string injection
    "NCT04252118\nNCT04280705",                 # two IDs in one
    "../../etc/passwd",                         # path traversal
    "CTRI/2020/05/025114/../../x",
    "ChiCTR2100045397<script>alert(1)</script>",
    "%4E%43%54%30%34%32%35%32%31%31%38",         # percent-encoded
    "NCT0425211\uff18",                         # full-width digit
    "NCT04252118\u200b",                        # zero-width space
    "PUBMED12345678",                           # unknown registry prefix
    "ABC-123",
    "",
]


@pytest.mark.parametrize(
    "args",
    [("watch", "add"), ("watch", "remove"), ("show",), ("history",), ("changes", "--trial"), ("refresh", "--trial")],
)
def test_hostile_trial_ids_are_rejected_by_every_command(tmp_path, args):
    """Malformed IDs, injected characters and unknown prefixes: exit 2, a message, nothing written."""
    config = tmp_path / "config.toml"
    config.write_text("# keep me\n[watch]\ntrials = ['NCT04252118']\n")
    before = config.read_bytes()
    for bad in HOSTILE_IDS:
        result = CliRunner().invoke(cli, ["--config", str(config), *args, bad])
        assert_clean_error(result, "trial ID")
        assert "\n" not in result.stderr.rstrip("\n"), "the ID must be shown escaped on one line"
    assert_nothing_written(tmp_path, config, before)
