"""The configuration contract of issue 3, and every TOML example in the docs, parse as written."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from pipeline.config import parse_config

REPO = Path(__file__).resolve().parents[2]

CONTRACT = """
[schedule]
ctgov = "0 10 * * 1-5"      # cron, 5 fields, or 6 with seconds first
who = "0 4 * * 6"

[[alerts]]
channel = "webhook"         # "webhook", "email", "folder" or "apprise"
url = "http://127.0.0.1:8080/hook"
significance = ["status", "outcomes"]   # optional; default: all but "other"

[[alerts]]
channel = "email"
smtp_host = "127.0.0.1"
smtp_port = 1025
from = "trialwatch@example.org"
to = ["me@example.org"]
starttls = false
# username, password_env (name of the environment variable holding the password)
"""


def test_the_issue_contract_works_as_written():
    config = parse_config(tomllib.loads(CONTRACT))
    assert config.schedule == {"ctgov": "0 10 * * 1-5", "who": "0 4 * * 6"}
    hook, mail = config.alerts
    assert hook.channel == "webhook" and hook.options["url"] == "http://127.0.0.1:8080/hook"
    assert hook.significance == ("status", "outcomes")
    assert mail.channel == "email" and mail.options["smtp_port"] == 1025 and mail.options["to"] == ["me@example.org"]
    assert "other" not in mail.significance and "status" in mail.significance


def _toml_blocks():
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "notes").glob("*.md"))]:
        if path.exists():
            for i, block in enumerate(re.findall(r"```toml\n(.*?)```", path.read_text(), re.S)):
                yield pytest.param(block, id=f"{path.name}-{i}")


@pytest.mark.parametrize("block", list(_toml_blocks()))
def test_every_toml_example_in_the_docs_is_a_valid_config(block):
    parse_config(tomllib.loads(block))


def test_the_commented_alerts_in_the_shipped_config_are_valid_once_uncommented():
    text = (REPO / "config.toml").read_text()
    start = text.index("# [[alerts]]")
    uncommented = "\n".join(line[2:] if line.startswith("# ") else line for line in text[start:].splitlines())
    config = parse_config(tomllib.loads(text[:start] + uncommented), base_dir=REPO)
    assert [a.channel for a in config.alerts] == ["webhook", "email", "folder", "apprise"]
