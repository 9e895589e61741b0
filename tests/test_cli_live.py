"""The real CLI (subprocesses) against the simulator on a loopback port."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.demo import write_demo_config
from pipeline.lock import RefreshLock
from pipeline.simulator.corpus import Corpus
from pipeline.simulator.server import SimulatorServer

SHOW_KEYS = {
    "trial_id", "source", "registry", "public_title", "scientific_title", "recruitment_status",
    "date_registration", "date_first_enrolment", "completion_date", "target_size", "primary_sponsor",
    "secondary_sponsors", "funding", "countries", "conditions", "interventions", "primary_outcomes",
    "secondary_outcomes", "secondary_ids", "study_type", "phase", "age_min", "age_max", "gender",
    "inclusion_criteria", "exclusion_criteria", "results_posted", "last_updated",
}


def tw(config, *args):
    exe = Path(sys.executable).parent / "trialwatch"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pipeline"]
    return subprocess.run([*cmd, "--config", str(config), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def live(tmp_path):
    corpus = Corpus(size=12, seed=1)
    with SimulatorServer(corpus) as server:
        config = write_demo_config(tmp_path, server.ctgov_url, server.who_url, corpus.ids[:9])
        config.write_text(config.read_text().replace("retries = 2", "retries = 1"))
        yield corpus, config, server


def test_refresh_show_changes_history(live):
    corpus, config, server = live
    first = tw(config, "refresh")
    assert first.returncode == 0, first.stderr
    assert "fetched 17, new 17, unchanged 0, changed 0, missing 0, failed 0" in first.stdout

    nct = corpus.ids[0]
    for source in ("ctgov", "who"):
        shown = tw(config, "show", nct, "--source", source, "--json")
        assert shown.returncode == 0, shown.stderr
        record = json.loads(shown.stdout)
        assert SHOW_KEYS <= set(record) and record["source"] == source and record["trial_id"] == nct
    ctgov = json.loads(tw(config, "show", nct, "--json").stdout)
    assert "primary_completion_date" in ctgov and isinstance(ctgov["locations"], list)
    assert "recruitment_status" in tw(config, "show", nct).stdout

    corpus.advance(days=1)
    second = tw(config, "refresh", "--source", "ctgov")
    assert second.returncode == 0 and "changed 6" in second.stdout and "missing 1" in second.stdout
    rows = json.loads(tw(config, "changes", "--json", "--source", "ctgov").stdout)
    assert {tuple(sorted(r)) for r in rows} == {
        tuple(sorted(["trial_id", "source", "field", "old", "new", "significance", "detected_at", "registry_date",
                      "kind", "backfilled"])),
        tuple(sorted(["trial_id", "source", "field", "old", "new", "significance", "detected_at", "registry_date",
                      "kind", "backfilled", "added", "removed"])),
    }
    assert {r["trial_id"] for r in rows} == set(corpus.ids[:7])
    only = json.loads(tw(config, "changes", "--json", "--trial", nct).stdout)
    assert [(r["field"], r["new"]) for r in only if r["kind"] == "field"] == [
        ("recruitment_status", "active_not_recruiting")]
    assert json.loads(tw(config, "changes", "--json", "--since", "2999-01-01").stdout) == []
    table = tw(config, "changes").stdout
    assert "Recruiting -> Active, not recruiting" in table  # status codes read as labels

    history = tw(config, "history", nct)
    assert history.returncode == 0 and "v1  " in history.stdout and "first version" in history.stdout and "recruitment_status" in history.stdout
    hist = json.loads(tw(config, "history", nct, "--source", "ctgov", "--json").stdout)
    assert len(hist["versions"]) == 2 and hist["versions"][1]["changes"][0]["field"] == "recruitment_status"

    gone = corpus.ids[3]
    assert "MISSING" in tw(config, "show", gone).stdout or tw(config, "show", gone).returncode == 1


def test_refresh_of_one_trial_and_unwatched_trial(live):
    corpus, config, server = live
    one = tw(config, "refresh", "--trial", corpus.ids[0])
    assert one.returncode == 0 and "new 2" in one.stdout
    other = tw(config, "refresh", "--trial", "NCT01234567")
    assert other.returncode == 2 and "not on the watchlist" in other.stderr


def test_second_refresher_is_refused_by_the_lock(live):
    corpus, config, server = live
    with RefreshLock(Path(config).parent / "trialwatch-demo.db"):
        refused = tw(config, "refresh")
    assert refused.returncode == 3 and "another trialwatch refresh" in refused.stderr


def test_unknown_trial_is_missing_and_failures_exit_1(live):
    corpus, config, server = live
    # a WHO-only trial the portal does not have: its not-found page -> missing, exit 0
    tw(config, "watch", "add", "ISRCTN99999999")
    result = tw(config, "refresh", "--source", "who")
    assert result.returncode == 0 and "missing 1" in result.stdout
    # the CT.gov API answering 503 to everything: the run finishes, trials fail, exit 1
    server.set_faults([{"match": "/api/v2/studies", "kind": "503"}])
    failed = tw(config, "refresh", "--source", "ctgov")
    assert failed.returncode == 1 and "failed 8" in failed.stdout and "HTTP 503" in failed.stderr
    assert json.loads(tw(config, "changes", "--json").stdout) == []
