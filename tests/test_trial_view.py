"""The trial view end to end: links, discrepancy and flag events in the store, the
``trial`` and ``flags`` commands, alert delivery, on the simulator and on the real fixtures."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from datetime import date

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.clock import utcnow
from pipeline.config import load_config, parse_config
from pipeline.deliver import deliver_pending
from pipeline.demo import write_demo_config
from pipeline.diff import content_hash
from pipeline.errors import ConfigError
from pipeline.import_ictrp import import_export
from pipeline.plan import plan_found
from pipeline.refresh import refresh
from pipeline.simulator.corpus import Corpus
from pipeline.simulator.server import SimulatorServer
from pipeline.sources import SOURCES
from pipeline.sources.ctgov.parse import normalize_study, parse_history_version
from pipeline.store import SCHEMA_VERSION, Store
from pipeline.trial_events import update_trials


def events(store):
    return [c for c in store.changes() if c["kind"] in ("discrepancy", "flag")]


def invoke(config_path, *args):
    result = CliRunner().invoke(cli, ["--config", str(config_path), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def sim_post(server, path, method="POST"):
    req = urllib.request.Request(f"{server.base_url}{path}", method=method, data=b"")
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read())


# -- the seed scenario through the simulator ------------------------------------------------


def test_a_stale_who_copy_gives_one_discrepancy_then_one_resolution(tmp_path):
    corpus = Corpus(size=12, seed=1)
    nct = corpus.nct_ids
    trial = nct[0]  # RECRUITING; ClinicalTrials.gov moves it to ACTIVE_NOT_RECRUITING on day 1
    with SimulatorServer(corpus) as server:
        path = write_demo_config(tmp_path, server.ctgov_url, server.who_url, corpus.ids)
        out = tmp_path / "alerts"
        with open(path, "a") as f:
            f.write(f'\n[[alerts]]\nchannel = "folder"\nname = "files"\npath = "{out}"\nformat = "text"\n'
                    'kinds = ["discrepancy"]\n')
        config = load_config(path)
        with Store(config.database_path) as store:
            first = refresh(config, store, backoff_base=0.01)
            assert first.counts["failed"] == 0
            # the simulator's two copies of every trial agree: no discrepancy on first sight
            assert [e for e in events(store) if e["kind"] == "discrepancy"] == []
            assert store.trial_members(trial) == [(trial, "ctgov"), (trial, "who")]
            deliver_pending(config, store)  # a new channel starts from here

            held = sim_post(server, f"/_sim/who-hold?id={trial}")
            assert held["status"] == "RECRUITING"
            corpus.advance(days=1)
            refresh(config, store, backoff_base=0.01)
            raised = [e for e in events(store) if e["kind"] == "discrepancy"]
            assert [(e["trial_id"], e["source"], e["field"]) for e in raised] == [(trial, "ctgov", "recruitment_status")]
            detail = raised[0]["new"]
            assert raised[0]["old"] is None and raised[0]["significance"] == "status"
            assert detail["summary"].startswith(f"the WHO ICTRP copy ({trial}), last refreshed ")
            assert "says recruiting; ClinicalTrials.gov" in detail["summary"]
            assert "has said active not recruiting since" in detail["summary"]
            assert {c["source"]: c["value"] for c in detail["copies"]} == {
                "who": "recruiting", "ctgov": "active_not_recruiting"}

            (outcome,) = deliver_pending(config, store)
            assert outcome.ok
            (sent,) = out.iterdir()
            assert "says recruiting" in sent.read_text()

            # no false events: a refresh where nothing changed adds nothing, and nothing is re-sent
            before = len(store.changes())
            again = refresh(config, store, backoff_base=0.01)
            assert len(store.changes()) == before and again.counts["raised"] == again.counts["cleared"] == 0
            deliver_pending(config, store)
            assert len(list(out.iterdir())) == 1

            shown = invoke(path, "trial", trial, "--full")
            assert "Where the copies disagree" in shown and "says recruiting" in shown
            assert "discrepancy raised" in shown
            assert "says recruiting" in invoke(path, "flags", "--kind", "discrepancy")
            assert json.loads(invoke(path, "flags", "--trial", trial, "--json"))[0]["subject"] == "recruitment_status"
            assert "says recruiting" in invoke(path, "report", "--since", "2000-01-01", "--format", "text")
            as_json = json.loads(invoke(path, "trial", trial, "--json"))
            assert [c["source"] for c in as_json["copies"]] == ["ctgov", "who"]
            assert as_json["discrepancies"][0]["subject"] == "recruitment_status"
            assert as_json["timeline"][0]["kind"] == "discrepancy"

            # the WHO copy catches up: one "resolved" event
            sim_post(server, f"/_sim/who-hold?id={trial}", method="DELETE")
            refresh(config, store, backoff_base=0.01)
            now = [e for e in events(store) if e["kind"] == "discrepancy"]
            assert len(now) == 2 and now[1]["new"] is None and now[1]["old"]["field"] == "recruitment_status"
            assert store.trial_flags(kind="discrepancy") == []
            assert len(store.trial_flags(kind="discrepancy", open_only=False)) == 1
            deliver_pending(config, store)
            assert len(list(out.iterdir())) == 2
            refresh(config, store, backoff_base=0.01)
            assert len([e for e in events(store) if e["kind"] == "discrepancy"]) == 2
            assert "resolved" in invoke(path, "flags", "--all", "--trial", trial)


# -- the real fixtures ---------------------------------------------------------------------


def load_real(store, fixtures_dir):
    ct = SOURCES["ctgov"]
    body = (fixtures_dir / "ctgov/history/NCT04280705/history_v0.json").read_bytes()
    version, study = parse_history_version(body)
    rec = normalize_study(study)
    store.save_backfilled_version("NCT04280705", "ctgov", record=rec, content_hash=content_hash(rec), raw=body,
                                  raw_format="history", parser_version=1, registry_version=version,
                                  registry_date=rec["last_updated"], changes=[], detected_at=utcnow(), run_id=None)
    store.finish_backfill("NCT04280705", "ctgov", 1)
    for f in sorted((fixtures_dir / "ctgov/v2").glob("NCT*.json")):
        raw = f.read_bytes()
        rec = ct.extract(raw, None)
        state = store.load_state(rec["trial_id"], "ctgov")
        store.save_update(plan_found(state, rec, old_record=None, raw=raw, raw_format="json", parser_version=1,
                                     now=utcnow(), new_hash=content_hash(rec)), None)
    for name in ("xml/ICTRP-Results_18Mar2020.xml", "csv/COVID19-927-trials_7Apr2020.csv",
                 "csv/COVID19-1135-trials_15Apr2020.csv", "xml/ICTRP-Results_export_2024-06-09_95trials.xml"):
        import_export(store, (fixtures_dir / "who" / name).read_bytes(), note=name)


def test_the_real_fixtures(tmp_path, fixtures_dir):
    with Store(tmp_path / "real.db") as store:
        load_real(store, fixtures_dir)
        keys = store.trial_key_map()
        assert keys[("NCT04280705", "ctgov")] == keys[("NCT04280705", "who")] == "NCT04280705"
        assert keys[("CTIS2023-507385-11-00", "who")] == "NCT05697861"
        # ClinicalTrials.gov's first version of ACTT-1 against WHO's April 2020 copies
        actt = {f["subject"] for f in store.trial_flags(trial_key="NCT04280705", kind="discrepancy")}
        assert actt == {"recruitment_status", "target_size", "date_first_enrolment"}
        flags = {(f["subject"], f["copies"]) for f in store.trial_flags(kind="flag")}
        # the WHO copy of a record held from ClinicalTrials.gov is not flagged on its own
        assert not any(c == "who:NCT04280705" for _s, c in flags)
        assert ("retrospective_registration", "ctgov:NCT00184067") in flags  # registered 2005-09-12, began 2004-05
        assert ("outcome_switching", "who:NCT04333407") in flags  # its primary outcome changed between the CSVs
        assert ("results_overdue", "ctgov:NCT00763412") not in flags  # results posted
        # nothing new: no event
        before = len(store.changes())
        again = update_trials(store)
        assert (again.raised, again.cleared, again.judged) == (0, 0, 0) and len(store.changes()) == before
        # re-importing the same file changes nothing either
        import_export(store, (fixtures_dir / "who/csv/COVID19-1135-trials_15Apr2020.csv").read_bytes())
        assert len(store.changes()) == before
        # a new day re-judges date-dependent flags, still without events when nothing moved
        later = update_trials(store, today=date(2026, 12, 1) if utcnow()[:10] != "2026-12-01" else date(2026, 12, 2))
        assert later.raised == 0 and later.cleared == 0


def test_a_flag_raises_and_clears_as_a_record_changes(tmp_path, fixtures_dir):
    raw = (fixtures_dir / "ctgov/v2/NCT03418623.json").read_bytes()  # COMPLETED, no results
    rec = SOURCES["ctgov"].extract(raw, None)
    with Store(tmp_path / "t.db") as store:
        store.save_update(plan_found(None, rec, old_record=None, raw=raw, raw_format="json", parser_version=1,
                                     now=utcnow(), new_hash=content_hash(rec)), None)
        update_trials(store, today=date(2026, 11, 30))
        assert {f["subject"] for f in store.trial_flags()} >= {"results_overdue"}
        posted = {**rec, "results_posted": True}
        state = store.load_state(rec["trial_id"], "ctgov")
        store.save_update(plan_found(state, posted, old_record=rec, raw=None, raw_format="json", parser_version=1,
                                     now=utcnow(), new_hash=content_hash(posted)), None)
        update_trials(store, today=date(2026, 11, 30))
        assert "results_overdue" not in {f["subject"] for f in store.trial_flags()}
        cleared = [c for c in store.changes() if c["kind"] == "flag" and c["field"] == "results_overdue"]
        # raised on first sight without an event (a first sighting is a state); its resolution is one
        assert [c["new"] is None for c in cleared] == [True]
        # a stricter threshold is a new judgement the same day
        update_trials(store, today=date(2026, 11, 30), flags={"results_overdue_months": 1200})


def test_flags_config_is_validated(tmp_path):
    assert parse_config({"flags": {"results_overdue_months": 18}}, base_dir=tmp_path).flags["results_overdue_months"] == 18
    for bad in ({"results_overdue_months": 0}, {"results_overdue_months": "12"}, {"nonsense": 1}):
        with pytest.raises(ConfigError):
            parse_config({"flags": bad}, base_dir=tmp_path)
    with pytest.raises(ConfigError):
        parse_config({"alerts": [{"channel": "folder", "path": "x", "kinds": ["flags"]}]}, base_dir=tmp_path)


def test_a_v3_database_gains_the_trial_tables(tmp_path):
    path = tmp_path / "old.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE trial_links")
    conn.execute("DROP TABLE trial_flags")
    conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert store.trial_key_map() == {} and store.trial_flags() == []


def test_sources_refreshed_on_their_own_schedules_give_no_passing_discrepancy(tmp_path):
    """The daemon refreshes ClinicalTrials.gov and WHO at different times: a change seen on
    one is no discrepancy until the other copy was checked again, and then only if it differs."""
    corpus = Corpus(size=12, seed=1)
    nct = corpus.nct_ids
    with SimulatorServer(corpus) as server:
        config = load_config(write_demo_config(tmp_path, server.ctgov_url, server.who_url, corpus.ids))
        with Store(config.database_path) as store:
            refresh(config, store, backoff_base=0.01)
            corpus.hold_who(nct[4])  # [4] goes RECRUITING -> TERMINATED; its WHO copy stays behind
            corpus.advance(days=1)
            refresh(config, store, sources=["ctgov"], backoff_base=0.01)
            # [0], [1], [4] moved on ClinicalTrials.gov; the stored WHO copies are older: not known yet
            assert [e for e in events(store) if e["kind"] == "discrepancy"] == []
            refresh(config, store, sources=["who"], backoff_base=0.01)
            raised = [e for e in events(store) if e["kind"] == "discrepancy"]
            assert [(e["trial_id"], e["field"]) for e in raised] == [(nct[4], "recruitment_status")]
            refresh(config, store, backoff_base=0.01)
            assert len([e for e in events(store) if e["kind"] == "discrepancy"]) == 1
