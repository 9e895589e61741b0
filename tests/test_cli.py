"""The CLI through its real entry point (a subprocess running the installed command)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from pipeline.cli import cli

REPO = Path(__file__).resolve().parent.parent


def run(*args, cwd=None, env=None):
    exe = shutil.which("trialwatch", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "pipeline"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_python_dash_m_is_the_same_cli():
    out = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "refresh" in out.stdout


def write_config(tmp_path, body):
    path = tmp_path / "config.toml"
    path.write_text(body)
    return path


def test_bad_config_exits_2_naming_the_key_and_writes_nothing(tmp_path):
    cfg = write_config(tmp_path, '[sources.ctgov]\ntimeout = "fast"\n[watch]\ntrials = ["NCT04252118"]\n')
    result = run("--config", str(cfg), "refresh")
    assert result.returncode == 2
    assert "sources.ctgov.timeout" in result.stderr
    assert not (tmp_path / "trialwatch.db").exists()


def test_invalid_trial_id_in_config_exits_2(tmp_path):
    cfg = write_config(tmp_path, '[watch]\ntrials = ["NCT04252118", "NCT123"]\n')
    result = run("--config", str(cfg), "refresh")
    assert result.returncode == 2 and "watch.trials[1]" in result.stderr and "NCT123" in result.stderr
    assert not (tmp_path / "trialwatch.db").exists()


def test_missing_config_file_exits_2(tmp_path):
    result = run("--config", str(tmp_path / "nope.toml"), "refresh")
    assert result.returncode == 2 and "config file not found" in result.stderr


def test_watch_add_list_remove_edits_config_keeping_comments(tmp_path):
    cfg = write_config(tmp_path, '# my watchlist\n[watch]\ntrials = ["NCT04252118"]  # seed\n')
    result = run("--config", str(cfg), "watch", "add", "nct04280705", "ISRCTN83971151")
    assert result.returncode == 0, result.stderr
    text = cfg.read_text()
    assert "# my watchlist" in text and "NCT04280705" in text and "ISRCTN83971151" in text
    listing = run("--config", str(cfg), "watch", "list", "--json")
    rows = json.loads(listing.stdout)
    assert {(r["trial_id"], r["source"]) for r in rows} == {
        ("NCT04252118", "ctgov"), ("NCT04252118", "who"), ("NCT04280705", "ctgov"), ("NCT04280705", "who"),
        ("ISRCTN83971151", "who")}
    assert all(r["state"] == "never fetched" for r in rows)
    assert run("--config", str(cfg), "watch", "remove", "NCT04252118").returncode == 0
    assert "NCT04252118" not in cfg.read_text()


def test_watch_add_rejects_bad_ids_without_touching_the_file(tmp_path):
    cfg = write_config(tmp_path, '[watch]\ntrials = ["NCT04252118"]\n')
    before = cfg.read_text()
    result = run("--config", str(cfg), "watch", "add", "NCT04252118;rm -rf /")
    assert result.returncode == 2 and "invalid trial ID" in result.stderr
    assert cfg.read_text() == before


def test_show_and_changes_on_an_empty_database(tmp_path):
    cfg = write_config(tmp_path, '[watch]\ntrials = ["NCT04252118"]\n')
    shown = run("--config", str(cfg), "show", "NCT04252118")
    assert shown.returncode == 1 and "no stored record" in shown.stderr
    changes = run("--config", str(cfg), "changes", "--json")
    assert changes.returncode == 0 and json.loads(changes.stdout) == []
    bad = run("--config", str(cfg), "changes", "--since", "yesterday")
    assert bad.returncode == 2


def test_extract_ctgov_fixture(fixtures_dir):
    result = run("extract", "--source", "ctgov", str(fixtures_dir / "ctgov/v2/NCT03934567.json"))
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["trial_id"] == "NCT03934567" and record["recruitment_status"] == "active_not_recruiting"


def test_extract_ctgov_list_page_and_history_version(fixtures_dir):
    page = run("extract", "--source", "ctgov",
               str(fixtures_dir / "ctgov/v2/lists/studies_2025-06-17T11-16-37_pageSize2_nextPageToken.json"))
    assert page.returncode == 0 and len(json.loads(page.stdout)) == 2
    hist = run("extract", "--source", "ctgov", str(fixtures_dir / "ctgov/history/NCT04280705/history_v0.json"))
    assert hist.returncode == 0 and json.loads(hist.stdout)["recruitment_status"] == "not_yet_recruiting"


def test_extract_who_fixtures(fixtures_dir):
    result = run("extract", "--source", "who", str(fixtures_dir / "who/html/ChiCTR2100045397.html"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["registry"] == "ChiCTR"
    missing = run("extract", "--source", "who", str(fixtures_dir / "who/html/not_found__ChiCTR-2100045397.html"))
    assert missing.returncode == 1 and "not-found page" in missing.stderr


def test_extract_rejects_garbage(tmp_path):
    junk = tmp_path / "junk.json"
    junk.write_text('{"studies": [')
    result = run("extract", "--source", "ctgov", str(junk))
    assert result.returncode == 1 and "junk.json" in result.stderr and "Traceback" not in result.stderr


def _all_commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _all_commands(command, (*prefix, name))


def test_every_command_and_option_is_in_the_readme():
    readme = (REPO / "README.md").read_text()
    for path, command in _all_commands(cli):
        assert " ".join(path) in readme, f"`trialwatch {' '.join(path)}` is not documented in README.md"
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt not in ("--help",):
                    assert re.search(re.escape(opt) + r"\b", readme), f"option {opt} of {' '.join(path)} missing"


def test_unwritable_database_folder_is_a_clear_error(tmp_path):
    cfg = write_config(tmp_path, '[database]\npath = "/proc/nope/x.db"\n[watch]\ntrials = ["NCT04252118"]\n')
    result = run("--config", str(cfg), "refresh")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "/proc/nope" in result.stderr


@pytest.mark.parametrize("since", ["99999999d", "9999-12-31T23:30:00-05:00", "0001-01-01T00:30:00+01:00",
                                   "9" * 30 + "w"])
def test_since_out_of_range_is_a_usage_error_not_a_traceback(tmp_path, since):
    cfg = write_config(tmp_path, '[database]\npath = "t.db"\n')
    commands = [["report", "--since", since, "--peek"]]
    if since[-1].isdigit():  # changes --since takes a date or time, not an age
        commands.append(["changes", "--since", since])
    for command in commands:
        result = run("--config", str(cfg), *command)
        assert result.returncode == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr and "OverflowError" not in result.stderr
        # click < 8.2 writes --since, later versions '--since'
        assert re.search(r"Invalid value for '?--since'?", result.stderr), result.stderr
