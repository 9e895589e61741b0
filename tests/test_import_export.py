"""import-ictrp on the real WHO exports, export and search of the mirror (real SQLite files)."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.diff import content_hash
from pipeline.import_ictrp import carry_over, import_export_file
from pipeline.sources.who.export import detect_export_format, export_fields, iter_export_rows, parse_export_csv
from pipeline.record import empty_record
from pipeline.plan import Update
from pipeline.store import Store

APR7 = "COVID19-927-trials_7Apr2020.csv"
APR15 = "COVID19-1135-trials_15Apr2020.csv"


@pytest.fixture
def csv_dir(fixtures_dir):
    return fixtures_dir / "who" / "csv"


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[database]\npath = "tw.db"\n')
    return path


def run(config_file, *args):
    result = CliRunner().invoke(cli, ["--config", str(config_file), *args], catch_exceptions=False)
    return result


def test_two_weekly_covid_csvs_give_the_real_changes(tmp_path, csv_dir):
    store = Store(tmp_path / "tw.db")
    first = import_export_file(store, csv_dir / APR7)
    assert first.format == "csv"
    assert first.counts["new"] == 927 and first.counts["changed"] == 0
    assert store.changes() == []  # a first sighting is a snapshot, not changes

    second = import_export_file(store, csv_dir / APR15)
    assert second.counts["new"] == 1135 - 924
    assert second.counts["new"] + second.counts["unchanged"] + second.counts["changed"] == 1135
    changes = store.changes(source="who", include_events=False)  # discrepancy/flag events: tests/test_trial_view.py
    by_field = Counter(c["field"] for c in changes)
    assert by_field["recruitment_status"] == 28
    (size,) = [c for c in changes if c["trial_id"] == "NCT04292730" and c["field"] == "target_size"]
    assert (size["old"], size["new"]) == (600, 1600)
    assert all(c["backfilled"] is False and c["kind"] == "field" for c in changes)

    # Trials of the 7 April file absent from the 15 April one are not "missing".
    assert not [c for c in changes if c["kind"] == "missing"]
    gone = set(r["trial_id"] for r in parse_export_csv((csv_dir / APR7).read_bytes())) - set(
        r["trial_id"] for r in parse_export_csv((csv_dir / APR15).read_bytes())
    )
    assert gone
    states = {t["trial_id"]: t["state"] for t in store.trials("who")}
    assert all(states[t] == "present" for t in gone)

    # Each import is a run; raw rows are kept and re-readable.
    runs = store.runs()
    assert [r["trigger"] for r in runs[:2]] == ["import", "import"]
    state = store.load_state("NCT04292730", "who")
    snap = store.load_snapshot(state.snapshot_id)
    assert snap["raw_format"] == "csv"
    (reread,) = list(parse_export_csv(snap["raw"]))
    assert reread["target_size"] == 1600

    # Importing the same file again adds nothing.
    again = import_export_file(store, csv_dir / APR15)
    assert again.counts["unchanged"] == 1135 and len(store.changes(include_events=False)) == len(changes)
    assert again.counts["raised"] == again.counts["cleared"] == 0  # nor any discrepancy or flag event
    store.close()


def test_import_xml_detected_by_content(tmp_path, fixtures_dir):
    src = fixtures_dir / "who" / "xml" / "ICTRP-Results_export_2024-06-09_95trials.xml"
    renamed = tmp_path / "export.csv"  # the name lies; the content decides
    renamed.write_bytes(src.read_bytes())
    store = Store(tmp_path / "tw.db")
    result = import_export_file(store, renamed)
    assert result.format == "xml" and result.counts["new"] == 95
    row = store.trials("who")[0]
    snap = store.load_snapshot(row["snapshot_id"])
    assert snap["raw_format"] == "xml" and snap["raw"].startswith(b"<Trials_downloaded_from_ICTRP><Trial>")
    store.close()


def test_detect_format():
    assert detect_export_format(b"\xef\xbb\xbf<?xml version='1.0'?><Trials_downloaded_from_ICTRP/>") == "xml"
    assert detect_export_format(b"  \n<Trials_downloaded_from_ICTRP/>") == "xml"
    assert detect_export_format(b"\xef\xbb\xbfTrialID,Public title\n") == "csv"


def test_fields_a_file_cannot_carry_keep_their_stored_values(csv_dir):
    data = (csv_dir / APR7).read_bytes()
    record, raw, fields = next(iter(iter_export_rows(data)))
    assert "secondary_outcomes" not in fields and "funding" not in fields
    assert "recruitment_status" in fields and "target_size_raw" in fields and "contacts" in fields
    old = dict(record, secondary_outcomes=["Mortality at day 28"], funding=["A funder"])
    merged = carry_over(record, old, fields)
    assert merged["secondary_outcomes"] == ["Mortality at day 28"] and merged["funding"] == ["A funder"]
    assert content_hash(merged) == content_hash(old)
    assert export_fields(["trialid", "public_title"]) == {"trial_id", "source", "public_title"}


def test_cli_import_export_search(config_file, csv_dir, tmp_path):
    result = run(config_file, "import-ictrp", str(csv_dir / APR7), str(csv_dir / APR15))
    assert result.exit_code == 0, result.output
    assert "927 trials, new 927" in result.output and "1135 trials" in result.output

    # JSON Lines to stdout: one current record per line.
    result = run(config_file, "export", "--format", "jsonl", "--source", "who")
    lines = result.output.splitlines()
    assert len(lines) == 927 + 1135 - 924
    first = json.loads(lines[0])
    assert first["source"] == "who" and first["trial_id"] <= json.loads(lines[-1])["trial_id"]

    # CSV to a file: header then one row per record, lists joined with "; ".
    out = tmp_path / "mirror.csv"
    result = run(config_file, "export", "--format", "csv", "--out", str(out))
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == len(lines)
    (row,) = [r for r in rows if r["trial_id"] == "NCT04292730"]
    assert row["target_size"] == "1600" and row["source"] == "who"

    # Search: every word must match, best first, JSON with --json, --limit honoured.
    result = run(config_file, "search", "hydroxychloroquine", "--json", "--limit", "5")
    hits = json.loads(result.output)
    assert 1 <= len(hits) <= 5
    for hit in hits:
        text = json.dumps(hit).lower()
        assert "hydroxychloroquine" in text
    result = run(config_file, "search", "--limit", "3", "remdesivir")
    assert result.exit_code == 0 and "remdesivir" in result.output.lower()
    result = run(config_file, "search", "--json", "zzzznotaword")
    assert json.loads(result.output) == []


def test_search_index_follows_the_current_snapshot(tmp_path):
    store = Store(tmp_path / "tw.db")

    def save(title, conditions, outcome):
        record = empty_record("NCT01234567", "ctgov", "ClinicalTrials.gov")
        record.update(public_title=title, conditions=conditions, interventions=["Drug: Placebo"])
        store.save_update(
            Update("NCT01234567", "ctgov", outcome, record=record, content_hash=content_hash(record),
                   new_snapshot=True), None
        )

    save("Aspirin after stroke", ["Stroke"], "new")
    assert [r["trial_id"] for r in store.search('"aspirin"')] == ["NCT01234567"]
    save("Clopidogrel after stroke", ["Ischemic Stroke"], "changed")
    assert store.search('"aspirin"') == []
    assert [r["trial_id"] for r in store.search('"clopidogrel"')] == ["NCT01234567"]
    assert [r["trial_id"] for r in store.search('"ischemic" "placebo"')] == ["NCT01234567"]
    assert store.conn.execute("SELECT count(*) FROM search_fts").fetchone()[0] == 1
    # A database indexed before: rebuilt once, same answer.
    store.conn.execute("DELETE FROM search_fts")
    store.set_meta("search_index", None)
    assert store.ensure_search_index() is True
    assert [r["trial_id"] for r in store.search('"clopidogrel"')] == ["NCT01234567"]
    assert store.ensure_search_index() is False
    store.close()
