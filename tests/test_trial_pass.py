"""The trial pass after a run is incremental: links move only when a record's IDs do,
the records' facts stand in for them, and a database from before either kept them is
linked and judged in full once.  A real SQLite file throughout."""

from __future__ import annotations

import json
import sqlite3

from pipeline.diff import content_hash, diff_records
from pipeline.linking import key_hits, link_key_rows, record_keys
from pipeline.plan import Update
from pipeline.record import empty_record
from pipeline.store import Store
from pipeline.trial_events import update_trials
from pipeline.trial_facts import facts_of

NCT = "NCT04280705"
EUCTR = "EUCTR2020-001052-18-DE"
NOW = "2026-11-30T10:00:00Z"


def record(trial_id, source, **fields):
    r = empty_record(trial_id, source, "ClinicalTrials.gov" if source == "ctgov" else "WHO ICTRP")
    r.update(fields)
    return r


def save(store, run, new, old=None):
    store.save_update(Update(new["trial_id"], new["source"], "changed" if old else "new", record=new,
                             content_hash=content_hash(new), raw=json.dumps(new).encode(), raw_format="json",
                             new_snapshot=True, changes=diff_records(old, new) if old else []), run)


def links(store):
    return dict(store.conn.execute("SELECT trial_id || ' ' || source, trial_key FROM trial_links").fetchall())


def stale_link_rows(store):
    """Link rows not made from their record's current snapshot, and ``trial_link_keys`` rows
    that are not the keys of the link rows (none after a pass)."""
    stale = store.conn.execute(
        "SELECT count(*) FROM trial_links l JOIN trials t USING (trial_id, source)"
        " WHERE l.snapshot_id IS NOT t.snapshot_id OR l.link_ids IS NULL"
    ).fetchone()[0]
    want = {row for t, s, ids in store.conn.execute("SELECT trial_id, source, link_ids FROM trial_links")
            for row in link_key_rows(t, s, ids)}
    have = set(store.conn.execute("SELECT key, trial_id, source, secondary FROM trial_link_keys").fetchall())
    return stale + len(want ^ have)


def test_links_follow_the_secondary_ids_as_records_change(tmp_path):
    with Store(tmp_path / "t.db") as store:
        run = store.start_run(["ctgov", "who"], "test")
        a = record(NCT, "ctgov", public_title="A", recruitment_status="recruiting", secondary_ids=["ORG-1"])
        eu = record(EUCTR, "who", public_title="A (EU)", recruitment_status="recruiting")
        save(store, run, a)
        save(store, run, eu)
        update_trials(store, run_id=run, now=NOW)
        assert links(store) == {f"{NCT} ctgov": NCT, f"{EUCTR} who": EUCTR}
        assert stale_link_rows(store) == 0

        # The ClinicalTrials.gov record starts naming the EudraCT number: one trial now.
        b = {**a, "secondary_ids": ["ORG-1", "2020-001052-18"]}
        save(store, run, b, a)
        update_trials(store, run_id=run, now=NOW)
        assert links(store) == {f"{NCT} ctgov": NCT, f"{EUCTR} who": NCT}
        assert stale_link_rows(store) == 0

        # A change that leaves the IDs alone keeps the links (only the snapshot moves).
        c = {**b, "public_title": "A, renamed"}
        save(store, run, c, b)
        update_trials(store, run_id=run, now=NOW)
        assert links(store) == {f"{NCT} ctgov": NCT, f"{EUCTR} who": NCT}
        assert stale_link_rows(store) == 0

        # The number is dropped again: two trials.
        d = {**c, "secondary_ids": ["ORG-1"]}
        save(store, run, d, c)
        update_trials(store, run_id=run, now=NOW)
        assert links(store) == {f"{NCT} ctgov": NCT, f"{EUCTR} who": EUCTR}
        assert stale_link_rows(store) == 0


def test_a_discrepancy_is_raised_when_two_records_become_one_trial(tmp_path):
    """Linking by a changed secondary ID judges the joined trial in the same pass."""
    with Store(tmp_path / "t.db") as store:
        run = store.start_run(["ctgov", "who"], "test")
        a = record(NCT, "ctgov", recruitment_status="recruiting", target_size=100, secondary_ids=[])
        eu = record(EUCTR, "who", recruitment_status="recruiting", target_size=300)
        save(store, run, a)
        save(store, run, eu)
        update_trials(store, run_id=run, now=NOW)
        assert store.trial_flags(kind="discrepancy") == []
        save(store, run, {**a, "secondary_ids": ["2020-001052-18"]}, a)
        update_trials(store, run_id=run, now=NOW)
        (flag,) = store.trial_flags(kind="discrepancy")
        assert flag["subject"] == "target_size" and flag["trial_key"] == NCT


def test_a_snapshot_keeps_the_facts_the_rules_read_and_the_rules_read_them_alike(tmp_path, fixtures_dir):
    from pipeline.integrity import Version, flags_of
    from datetime import date

    from pipeline.sources.ctgov.parse import normalize_study

    studies = sorted((fixtures_dir / "ctgov" / "v2").glob("NCT*.json"))
    checked = 0
    with Store(tmp_path / "t.db") as store:
        run = store.start_run(["ctgov"], "test")
        for path in studies:
            try:
                rec = normalize_study(json.loads(path.read_text()))
            except Exception:
                continue  # a list page or the history, not a study
            save(store, run, rec)
            stored = store.conn.execute(
                "SELECT f.facts, f.secondary_ids FROM snapshot_facts f JOIN trials t ON t.snapshot_id = f.snapshot_id"
                " WHERE t.trial_id = ?", (rec["trial_id"],)).fetchone()
            facts = json.loads(stored[0])
            assert json.loads(stored[1]) == rec["secondary_ids"]
            assert len(stored[0]) < len(json.dumps(rec)) / 4
            assert facts == facts_of(rec)
            for today in (date(2021, 1, 1), date(2026, 11, 30)):
                whole = flags_of([Version("v1", None, rec)], today, {}, results_due=True)
                cut = flags_of([Version("v1", None, facts)], today, {}, results_due=True)
                assert cut == whole
            checked += 1
    assert checked >= 10


def test_a_database_from_before_the_facts_is_linked_and_judged_in_full_once(tmp_path):
    db = tmp_path / "t.db"
    with Store(db) as store:
        run = store.start_run(["ctgov", "who"], "test")
        save(store, run, record(NCT, "ctgov", recruitment_status="recruiting", target_size=100,
                                secondary_ids=["2020-001052-18"]))
        save(store, run, record(EUCTR, "who", recruitment_status="recruiting", target_size=300))
    conn = sqlite3.connect(db)  # as v8 left it: no facts, links without their snapshot and IDs
    conn.execute("DELETE FROM snapshot_facts")
    conn.execute("INSERT INTO trial_links (trial_id, source, trial_key) VALUES (?, 'ctgov', ?)", (NCT, NCT))
    conn.commit()
    conn.close()
    with Store(db) as store:
        result = update_trials(store, now=NOW)
        assert links(store) == {f"{NCT} ctgov": NCT, f"{EUCTR} who": NCT}
        assert stale_link_rows(store) == 0
        assert result.judged == 1
        (flag,) = store.trial_flags(kind="discrepancy")
        assert flag["subject"] == "target_size"


def test_outcome_switching_reads_the_same_from_facts_as_from_records(fixtures_dir):
    """Every kind of switch, on real records of both registries, found alike in the facts."""
    from datetime import date

    from pipeline.integrity import Version, flags_of
    from pipeline.sources import SOURCES
    from pipeline.sources.who.export import detect_export_format, iter_export_rows

    ct = SOURCES["ctgov"].extract((fixtures_dir / "ctgov/v2/NCT03630471.json").read_bytes(), None)
    data = (fixtures_dir / "who/xml/ICTRP-Results_export_2024-06-09_95trials.xml").read_bytes()
    who = [r for r, _raw, _f in iter_export_rows(data, detect_export_format(data)) if r.get("primary_outcomes")][:5]
    found = 0
    for rec in [ct, *who]:
        first = {**rec, "date_first_enrolment": "2020-01-01"}
        primary = list(first.get("primary_outcomes_detail") or [])
        secondary = list(first.get("secondary_outcomes_detail") or [])
        edits = [
            {"primary_outcomes": first["primary_outcomes"] + ["A new primary outcome [Time Frame: Day 5]"]},
            {"primary_outcomes": first["primary_outcomes"][1:] or ["Something else entirely"]},
        ]
        if primary:
            moved = [{**primary[0], "time_frame": "Day 99"}] + primary[1:]
            edits.append({"primary_outcomes_detail": moved})
            edits.append({"primary_outcomes_detail": primary[1:] or [{"measure": "Other", "time_frame": "Day 1"}],
                          "secondary_outcomes_detail": secondary + primary[:1]})
        for edit in edits:
            later = {**first, **edit}
            whole = [Version("v1", "2020-02-01", first), Version("v2", "2020-03-01", later)]
            cut = [Version(v.label, v.date, facts_of(v.record)) for v in whole]
            expected = flags_of(whole, date(2026, 11, 30), {}, results_due=True)
            assert flags_of(cut, date(2026, 11, 30), {}, results_due=True) == expected
            found += "outcome_switching" in expected
    assert found >= 8


def test_discrepancies_read_the_same_from_facts_as_from_records(fixtures_dir):
    """ACTT-1's ClinicalTrials.gov record and its WHO copy (three real disagreements),
    judged on whole records and on their facts: the same discrepancies and flags."""
    from datetime import date

    from pipeline.integrity import Version
    from pipeline.sources import SOURCES
    from pipeline.sources.who.export import detect_export_format, iter_export_rows
    from pipeline.trial_events import _judge_trial

    ct = SOURCES["ctgov"].extract((fixtures_dir / "ctgov/history/NCT04280705/history_v0.json").read_bytes(), None)
    data = (fixtures_dir / "who/csv/COVID19-927-trials_7Apr2020.csv").read_bytes()
    who = next(r for r, _raw, _f in iter_export_rows(data, detect_export_format(data)) if r["trial_id"] == NCT)
    members = [(NCT, "ctgov"), (NCT, "who")]

    def judge(project):
        versions = {(NCT, "ctgov"): [Version("v1", "2020-03-01", project(ct), run_id=1)],
                    (NCT, "who"): [Version("v1", "2020-04-07", project(who), run_id=1)]}
        current, undecided = {}, set()
        _judge_trial(NCT, members, versions, {m: None for m in members}, date(2026, 11, 30), {}, current, undecided)
        return current, undecided

    whole = judge(lambda r: r)
    assert {ident[1] for ident in whole[0] if ident[0] == "discrepancy"} >= {"target_size", "date_first_enrolment"}
    assert judge(facts_of) == whole


def test_records_added_over_several_runs_link_as_they_would_all_at_once(tmp_path):
    """Added records are linked to the others by the keys they share, without relinking
    them: the result is what one pass over all of them gives."""
    batches = [
        [record("NCT00000001", "ctgov", secondary_ids=["2020-001052-18"]),
         record("ISRCTN12345678", "who"), record("NCT00000002", "ctgov", secondary_ids=["ORG-7"])],
        [record("NCT00000002", "who", secondary_ids=["NCT00000002"]),         # the WHO copy of a stored trial
         record("EUCTR2020-001052-18-DE", "who", secondary_ids=["ISRCTN12345678"])],  # joins two trials
        [record("NCT00000003", "ctgov", secondary_ids=["ORG-7"]),             # a shared org ID links nothing
         record("CTRI/2020/01/000001", "who", secondary_ids=["NCT00000003"])],
    ]
    with Store(tmp_path / "steps.db") as store:
        run = store.start_run(["ctgov", "who"], "test")
        for batch in batches:
            for r in batch:
                save(store, run, r)
            update_trials(store, run_id=run, now=NOW)
            assert stale_link_rows(store) == 0
        stepwise = links(store)
    with Store(tmp_path / "once.db") as store:
        run = store.start_run(["ctgov", "who"], "test")
        for batch in batches:
            for r in batch:
                save(store, run, r)
        update_trials(store, run_id=run, now=NOW)
        assert links(store) == stepwise
        # the index lookup finds what reading and parsing every record's IDs finds
        stored = {(t, src): json.loads(ids) for t, src, ids in store.conn.execute(
            "SELECT trial_id, source, link_ids FROM trial_links")}
        every_key = set().union(*(own | sec for own, sec in (record_keys(t, ids) for (t, _s), ids in stored.items())))
        every_key |= {"NCT09999999", "2020001052", "ORG7"}
        hits, key_of = store.link_key_hits(every_key)
        assert sorted(hits) == sorted(key_hits(every_key, stored))
        assert key_of == {m: k for m, k in store.trial_key_map().items() if m in {h[1] for h in hits}}
    assert stepwise["EUCTR2020-001052-18-DE who"] == stepwise["ISRCTN12345678 who"] == "NCT00000001"
    assert stepwise["NCT00000002 who"] == "NCT00000002"
    assert stepwise["NCT00000003 ctgov"] == stepwise["CTRI/2020/01/000001 who"] == "NCT00000003"


def test_a_v9_database_gets_its_link_keys_from_the_ids_its_records_were_linked_by(tmp_path):
    """v9 -> v10 fills trial_link_keys from trial_links; a record added afterwards finds
    the stored record it names by them."""
    db = tmp_path / "t.db"
    with Store(db) as store:
        run = store.start_run(["ctgov", "who"], "test")
        save(store, run, record(NCT, "ctgov", secondary_ids=["2020-001052-18", "ORG-1"]))
        save(store, run, record("ISRCTN12345678", "who"))
        update_trials(store, run_id=run, now=NOW)
    conn = sqlite3.connect(db)  # as v9 left it: no keys table
    conn.execute("DROP TABLE trial_link_keys")
    conn.execute("UPDATE meta SET value = '9' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with Store(db) as store:
        assert store.conn.execute("SELECT count(*) FROM trial_link_keys").fetchone()[0] == 4
        assert stale_link_rows(store) == 0
        run = store.start_run(["ctgov", "who"], "test")
        save(store, run, record(EUCTR, "who", secondary_ids=["ISRCTN12345678"]))  # names both stored records
        update_trials(store, run_id=run, now=NOW)
        assert links(store) == {f"{NCT} ctgov": NCT, "ISRCTN12345678 who": NCT, f"{EUCTR} who": NCT}
        assert stale_link_rows(store) == 0
