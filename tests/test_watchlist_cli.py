"""Issue 11 item 9: the watchlist through the real CLI.

``watch list`` shows titles, states (present / missing / pending) and last checks,
filtered by ``--tag``; ``watch add --tag T`` stores the IDs under ``[watch.tags]``;
``watch add --from FILE`` and ``watch add -`` add many IDs in one locked, atomic edit,
or none at all when any line is bad.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.config import load_config

CONFIG = '''[database]
path = "tw.db"

# what we watch
[watch]
trials = ["NCT04292730"]  # the first one
'''


def run(cfg, *args, input=None):
    return CliRunner().invoke(cli, ["--config", str(cfg), *args], input=input, catch_exceptions=False)


def test_add_from_a_file_and_stdin_with_tags(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG)
    ids = tmp_path / "ids.txt"
    ids.write_text("# trials from the review\nNCT04280705\n\n  ChiCTR2000029308  # spaces around are fine\nNCT04283461\n")

    result = run(cfg, "watch", "add", "--from", str(ids), "--tag", "covid")
    assert result.exit_code == 0, result.output
    assert result.output == "added 3 trials, 0 already watched (tagged covid)\n"
    text = cfg.read_text()
    assert "# what we watch" in text and "# the first one" in text  # comments kept
    config = load_config(cfg)  # the loader validates what was written
    assert config.trials == ("NCT04292730", "NCT04280705", "ChiCTR2000029308", "NCT04283461")
    assert config.tags == {"covid": ("NCT04280705", "ChiCTR2000029308", "NCT04283461")}

    result = run(cfg, "watch", "add", "-", "--tag", "vaccines", input="NCT04283461\nNCT04276896 # new\n")
    assert result.exit_code == 0, result.output
    assert result.output == "added 1 trials, 1 already watched (tagged vaccines)\n"
    config = load_config(cfg)
    assert config.trials[-1] == "NCT04276896"
    assert config.tags["vaccines"] == ("NCT04283461", "NCT04276896")

    result = run(cfg, "watch", "add", "NCT04292730", "--tag", "covid")
    assert result.output.startswith("already watched: NCT04292730")
    assert "NCT04292730" in load_config(cfg).tags["covid"]


def test_a_bad_line_is_reported_by_number_and_nothing_is_written(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG)
    before = cfg.read_bytes()
    ids = tmp_path / "ids.txt"
    ids.write_text("NCT04280705\n# fine\nNCT1\nNCT04283461\nnot an id\n")
    result = run(cfg, "watch", "add", "--from", str(ids))
    assert result.exit_code == 2
    assert f"{ids}:3: invalid trial ID 'NCT1'" in result.output
    assert f"{ids}:5: invalid trial ID 'not an id'" in result.output
    assert "nothing was added" in result.output
    assert cfg.read_bytes() == before

    result = run(cfg, "watch", "add", "-", input="NCT04280705\nbogus\n")
    assert result.exit_code == 2 and "<stdin>:2: invalid trial ID 'bogus'" in result.output
    assert cfg.read_bytes() == before
    result = run(cfg, "watch", "add", "NCT04280705", "--tag", "two words")
    assert result.exit_code == 2 and "not a tag name" in result.output
    assert cfg.read_bytes() == before
    result = run(cfg, "watch", "add", "-", input="# only comments\n\n")
    assert result.exit_code == 2 and "no trial IDs given" in result.output


def test_list_shows_titles_states_and_filters_by_tag(tmp_path, fixtures_dir):
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG)
    assert run(cfg, "watch", "add", "NCT04280705", "ChiCTR2000029308", "--tag", "covid").exit_code == 0
    csv_file = fixtures_dir / "who" / "csv" / "COVID19-1135-trials_15Apr2020.csv"
    assert run(cfg, "import-ictrp", str(csv_file)).exit_code == 0

    result = run(cfg, "watch", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["trial", "source", "title", "state", "status", "last_checked", "tags"]
    (actt,) = [line for line in lines if line.startswith("NCT04280705") and " who " in line]
    assert "Adaptive COVID-19 Treatment Trial (ACTT)" in actt and "present" in actt and "covid" in actt
    (pending,) = [line for line in lines if line.startswith("NCT04280705") and " ctgov " in line]
    assert "pending" in pending  # never fetched from ClinicalTrials.gov yet

    rows = json.loads(run(cfg, "watch", "list", "--tag", "covid", "--json").output)
    assert {r["trial_id"] for r in rows} == {"NCT04280705", "ChiCTR2000029308"}
    chictr = next(r for r in rows if r["trial_id"] == "ChiCTR2000029308")
    assert chictr["state"] == "present" and chictr["title"] and chictr["last_checked"] and chictr["tags"] == ["covid"]

    result = run(cfg, "watch", "list", "--tag", "nope")
    assert result.exit_code == 2 and "no tag 'nope' in [watch.tags] (known: covid)" in result.output
