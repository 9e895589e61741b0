"""Issue 11 item 10: changes between two imported WHO exports are dated by the exports.

Through the real CLI on the real 7 April and 15 April 2020 COVID-19 CSVs: ``changes``,
``history`` and reports show the registry's date (the record's "last refreshed" date in
the newer export), while ``detected_at`` stays the import time, so ``--since 7d``
windows still find what was imported today.
"""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.clock import utcnow
from pipeline.store import SCHEMA_VERSION

APR7 = "COVID19-927-trials_7Apr2020.csv"
APR15 = "COVID19-1135-trials_15Apr2020.csv"


@pytest.fixture
def imported(tmp_path, fixtures_dir):
    config = tmp_path / "config.toml"
    config.write_text('[database]\npath = "tw.db"\n')
    csv_dir = fixtures_dir / "who" / "csv"

    def run(*args):
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run("import-ictrp", str(csv_dir / APR7), str(csv_dir / APR15))
    return run


def test_changes_between_exports_carry_the_registry_date(imported):
    today = utcnow()[:10]
    rows = json.loads(imported("changes", "--json", "--trial", "NCT04292730"))
    (size,) = [r for r in rows if r["field"] == "target_size"]
    assert (size["old"], size["new"]) == (600, 1600)
    assert size["registry_date"] == "2020-04-14"  # its "Last Refreshed on" in the 15 April file
    assert size["detected_at"].startswith(today)  # when it was imported: windows and alerts go by this
    # record changes carry the export's date; discrepancy and flag events are trialwatch's
    # own judgement, dated when it raised them
    every = [r for r in json.loads(imported("changes", "--json")) if r["kind"] not in ("discrepancy", "flag")]
    assert every and all(r["registry_date"] and r["registry_date"] <= "2020-04-15" for r in every)

    table = imported("changes", "--trial", "NCT04292730")
    assert table.splitlines()[0].split()[0] == "date"
    edits = [line for line in table.splitlines() if " flag " not in line and " discrepancy " not in line]
    assert "2020-04-14" in table and not any(today in line for line in edits)


def test_history_and_reports_show_the_export_dates(imported):
    today = utcnow()[:10]
    history = imported("history", "NCT04292730")
    assert "v1  2020-04-06" in history and "v2  2020-04-14" in history
    assert not any(today in line for line in history.splitlines() if "flag raised" not in line)

    # A --since window is over what trialwatch recorded: today's import is in the last 7 days.
    text = imported("report", "--since", "7d", "--format", "text")
    assert "232 changes in 97 trials" in text
    assert re.search(r"Target size( · WHO ICTRP)?  \(2020-04-14\)", text)
    # each record change reads with its export's date (events, trialwatch's own judgement, are dated today)
    assert not any(f"({today}" in line for line in text.splitlines() if "Target size" in line or "Recruitment" in line)
    html = imported("report", "--since", "7d", "--format", "html")
    assert '<span class="when">2020-04-14</span>' in html
    doc = json.loads(imported("report", "--since", "7d", "--format", "json"))
    size = [c for c in doc["changes"] if c["trial_id"] == "NCT04292730" and c["field"] == "target_size"]
    assert size[0]["registry_date"] == "2020-04-14" and size[0]["detected_at"].startswith(today)
    csv_text = imported("report", "--since", "7d", "--format", "csv")
    assert "registry_date" in csv_text.splitlines()[0] and "2020-04-14" in csv_text


def test_a_version_3_database_gains_changes_registry_date(tmp_path):
    """Migration step 4 adds the column; the old changes keep no registry date and read as before."""
    import sqlite3

    from pipeline.store import Store

    path = tmp_path / "old.db"
    store = Store(path)
    store.conn.execute(
        "INSERT INTO changes (trial_id, source, field, old, new, significance, detected_at)"
        " VALUES ('NCT00000001', 'ctgov', 'target_size', '1', '2', 'enrollment', '2026-01-02T03:04:05Z')"
    )
    store.conn.execute("ALTER TABLE changes DROP COLUMN registry_date")
    store.conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")  # as trialwatch 3 left it
    store.close()
    for _ in range(2):
        Store(path).close()
    conn = sqlite3.connect(path)
    assert [r[1] for r in conn.execute("PRAGMA table_info(changes)")][-1] == "registry_date"
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    conn.close()
    with Store(path) as store:
        (change,) = store.changes()
        assert change["registry_date"] is None and change["detected_at"] == "2026-01-02T03:04:05Z"
