"""A third registry plugs in through the SOURCES table alone.

The toy registry (tests/toy_registry.py: its Source and a fake API on a loopback
port) is added to :data:`pipeline.sources.SOURCES`; no other module changes.  Then the
real CLI refreshes it, records a change and a disappearance, and ``show``,
``changes``, ``report`` and ``export`` work on its trials.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner
from toy_registry import ToyServer, ToySource

from pipeline.cli import cli
from pipeline.sources import SOURCES, sources_for

A, B = "ISRCTN12345678", "ISRCTN87654321"


@pytest.fixture
def toy(monkeypatch, tmp_path):
    monkeypatch.setitem(SOURCES, "toy", ToySource())
    trials = {
        A: {"title": "Tea for sore throats", "status": "RECRUITING", "conditions": ["Pharyngitis"], "colour": "green"},
        B: {"title": "Walking after surgery", "status": "RECRUITING", "conditions": [], "colour": "blue"},
    }
    with ToyServer(trials) as server:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[database]\npath = "{tmp_path / "tw.db"}"\n\n'
            "[sources.ctgov]\nenabled = false\n\n"
            "[sources.who]\nenabled = false\n\n"
            f'[sources.toy]\nbase_url = "{server.url}"\nrequests_per_second = 1000\nretries = 0\n\n'
            f'[watch]\ntrials = ["{A}", "{B}"]\n\n'
            '[schedule]\ntoy = "30 6 * * *"\n'
        )
        yield server, str(config)


def run(config: str, *args: str):
    result = CliRunner().invoke(cli, ["--config", config, *args], catch_exceptions=False)
    return result


def test_a_toy_registry_is_refreshed_shown_reported_and_exported_through_the_cli(toy):
    server, config = toy
    assert sources_for(A) == ("who", "toy")

    first = run(config, "refresh")
    assert first.exit_code == 0, first.output
    assert "new 2" in first.output
    assert {path.rpartition("/")[2] for path in server.requests} == {A, B}

    server.trials[A] = {**server.trials[A], "status": "COMPLETED", "colour": "red"}
    del server.trials[B]
    second = run(config, "refresh")
    assert second.exit_code == 0, second.output
    assert "changed 1" in second.output and "missing 1" in second.output

    shown = run(config, "show", A, "--source", "toy", "--json")
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)
    assert record["source"] == "toy" and record["recruitment_status"] == "COMPLETED"
    assert record["toy_colour"] == "red"

    changes = run(config, "changes", "--source", "toy", "--json")
    assert changes.exit_code == 0, changes.output
    rows = json.loads(changes.output)
    assert {(r["trial_id"], r["kind"], r.get("field")) for r in rows} >= {
        (A, "field", "recruitment_status"),
        (A, "field", "toy_colour"),
        (B, "missing", "_record"),
    }

    report = run(config, "report", "--since", "1d", "--format", "markdown")
    assert report.exit_code == 0, report.output
    assert f"## [{A}](https://toy.example/trials/{A})" in report.output
    assert f"[Toy Registry](https://toy.example/trials/{A})" in report.output  # the Source's label
    assert "Toy colour · _Toy Registry_: green → **red**" in report.output

    export = run(config, "export", "--source", "toy", "--format", "csv")
    assert export.exit_code == 0, export.output
    exported = list(csv.DictReader(io.StringIO(export.output)))
    assert "toy_colour" in exported[0]
    assert {r["trial_id"]: r["toy_colour"] for r in exported} == {A: "red"}


def test_an_unknown_source_name_is_refused_not_treated_as_another_registry(toy):
    _server, config = toy
    result = CliRunner().invoke(cli, ["--config", config, "changes", "--source", "nosuch"])
    assert result.exit_code == 2 and "nosuch" in result.output
