"""Config validation: every bad key, type or value names its key; nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_config, parse_config
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_is_valid():
    config = load_config(REPO / "config.toml")
    assert "NCT04252118" in config.trials
    assert config.sources["ctgov"].base_url == "https://clinicaltrials.gov/api/v2"
    assert config.sources["who"].base_url == "https://trialsearch.who.int"
    assert config.database_path.is_absolute()


def test_defaults_and_relative_database_path(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[database]\npath = "sub/x.db"\n[watch]\ntrials = ["nct04252118", "ChiCTR2100045397"]\n')
    config = load_config(path)
    assert config.database_path == tmp_path / "sub" / "x.db"
    assert config.trials == ("NCT04252118", "ChiCTR2100045397")
    assert config.sources["ctgov"].requests_per_second == 1.0
    assert config.enabled_sources() == ["ctgov", "who"]


@pytest.mark.parametrize(
    "data,key",
    [
        ({"databse": {}}, "databse"),
        ({"database": {"path": 3}}, "database.path"),
        ({"sources": {"ctgov": {"timeout": "fast"}}}, "sources.ctgov.timeout"),
        ({"sources": {"ctgov": {"timeout": -1}}}, "sources.ctgov.timeout"),
        ({"sources": {"ctgov": {"enabled": "no"}}}, "sources.ctgov.enabled"),
        ({"sources": {"ctgov": {"concurrency": True}}}, "sources.ctgov.concurrency"),
        ({"sources": {"ctgov": {"base_url": "ftp://x"}}}, "sources.ctgov.base_url"),
        ({"sources": {"ctgov": {"base_url": "not a url"}}}, "sources.ctgov.base_url"),
        ({"sources": {"who": {"page_size": 10}}}, "sources.who.page_size"),
        ({"sources": {"pubmed": {}}}, "sources.pubmed"),
        ({"sources": {"ctgov": {"retries": 1.5}}}, "sources.ctgov.retries"),
        ({"watch": {"trials": "NCT04252118"}}, "watch.trials"),
        ({"watch": {"trials": ["NCT1"]}}, "watch.trials"),
        ({"watch": {"trials": ["NCT04252118'; DROP TABLE trials;--"]}}, "watch.trials"),
        ({"watch": {"trials": [1]}}, "watch.trials"),
        ({"schedule": {"ctgov": "every day"}}, "schedule.ctgov"),
        ({"schedule": {"who": "61 * * * *"}}, "schedule.who"),
        ({"alerts": [{"channel": "pigeon"}]}, "alerts[0].channel"),
        ({"alerts": [{"channel": "webhook"}]}, "alerts[0].url"),
        ({"alerts": [{"channel": "email", "smtp_host": "h", "from": "a@b", "to": ["c@d"], "significance": ["loud"]}]},
         "alerts[0].significance"),
    ],
)
def test_bad_values_name_the_key(data, key):
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert info.value.key is not None and info.value.key.startswith(key)
    assert key in str(info.value)


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[watch\ntrials = [")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError):
        load_config(binary)


def test_cron_expression_that_never_fires_is_rejected():
    # Every field is valid on its own, but February never has a 30th or 31st.
    for expression in ("0 0 31 2 *", "0 0 30 2 *", "0 0 0 31 4 *"):
        with pytest.raises(ConfigError, match="never fires") as info:
            parse_config({"schedule": {"ctgov": expression}})
        assert info.value.key == "schedule.ctgov"
    parse_config({"schedule": {"ctgov": "0 0 29 2 *"}})  # leap years: fine
