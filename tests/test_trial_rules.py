"""The pure rules of the trial view, on real fixture records edited field by field.

Linking (pipeline.linking), discrepancies between copies (pipeline.crosscheck) and
integrity flags (pipeline.integrity).  Every record starts as a real one: a
ClinicalTrials.gov study or history version, or a row of a real WHO export.
"""

from __future__ import annotations

import copy
from datetime import date

import pytest

from pipeline.crosscheck import Copy, compare_copies, dates_agree, discrepancies, statuses_agree, value_since
from pipeline.integrity import (
    Version,
    compare_outcomes,
    flags_of,
    months_past,
    outcome_switching,
    results_overdue,
    retrospective_registration,
    stale_status,
)
from pipeline.linking import id_keys, link_records
from pipeline.sources import SOURCES
from pipeline.sources.who.export import detect_export_format, iter_export_rows


@pytest.fixture(scope="module")
def actt(fixtures_dir):
    """NCT04280705 (ACTT-1): ClinicalTrials.gov's first version, and the WHO copy of 7 April 2020."""
    ct = SOURCES["ctgov"].extract((fixtures_dir / "ctgov/history/NCT04280705/history_v0.json").read_bytes(), None)
    data = (fixtures_dir / "who/csv/COVID19-927-trials_7Apr2020.csv").read_bytes()
    who = next(r for r, _raw, _f in iter_export_rows(data, detect_export_format(data)) if r["trial_id"] == "NCT04280705")
    return ct, who


@pytest.fixture(scope="module")
def who_95(fixtures_dir):
    data = (fixtures_dir / "who/xml/ICTRP-Results_export_2024-06-09_95trials.xml").read_bytes()
    return {r["trial_id"]: r for r, _raw, _f in iter_export_rows(data, detect_export_format(data))}


@pytest.fixture(scope="module")
def ctgov(fixtures_dir):
    def load(nct: str) -> dict:
        return SOURCES["ctgov"].extract((fixtures_dir / f"ctgov/v2/{nct}.json").read_bytes(), None)

    return load


def copy_of(record, source, **changes):
    rec = copy.deepcopy(record)
    rec.update(changes)
    src = SOURCES[source]
    return Copy(trial_id=rec["trial_id"], source=source, registry=src.label, record=rec,
                updated=rec.get(src.updated_field) or rec.get("last_updated"), updated_word=src.updated_word)


# -- linking -------------------------------------------------------------------------------


def test_a_eudract_number_matches_the_eu_ctr_record_but_not_a_ctis_number():
    assert "EUDRACT2018-003519-24" in id_keys("EUCTR2018-003519-24-GB")
    assert "EUDRACT2018-003519-24" in id_keys("2018-003519-24")
    assert not any(k.startswith("EUDRACT") for k in id_keys("CTIS2023-507385-11-00"))
    assert id_keys("10M-03-8") == {"10M038"}


def test_real_who_records_link_by_secondary_ids(who_95, actt):
    ct, _who = actt
    records = {(t, "who"): r for t, r in who_95.items()}
    records[("NCT04280705", "ctgov")] = ct
    records[("NCT04280705", "who")] = actt[1]
    keys = link_records(records)
    # the CTIS record lists NCT05697861 among its secondary IDs: one trial, keyed by the NCT ID
    assert "NCT05697861" in who_95["CTIS2023-507385-11-00"]["secondary_ids"]
    assert keys[("CTIS2023-507385-11-00", "who")] == keys[("NCT05697861", "who")] == "NCT05697861"
    # the same NCT ID on two sources
    assert keys[("NCT04280705", "ctgov")] == keys[("NCT04280705", "who")] == "NCT04280705"
    # the EU-CTR national records of one EudraCT number are one trial
    eu = [t for t in who_95 if t.startswith("EUCTR2021-000037-14")]
    assert len(eu) > 1 and len({keys[(t, "who")] for t in eu}) == 1
    # an unlinked record is its own trial
    assert keys[("NCT06360289", "who")] == "NCT06360289"


def test_links_follow_the_records(who_95):
    cti = copy.deepcopy(who_95["CTIS2023-507385-11-00"])
    records = {("CTIS2023-507385-11-00", "who"): cti, ("NCT05697861", "who"): who_95["NCT05697861"]}
    assert len(set(link_records(records).values())) == 1
    cti["secondary_ids"] = [s for s in cti["secondary_ids"] if s != "NCT05697861"]
    assert len(set(link_records(records).values())) == 2


# -- discrepancies -------------------------------------------------------------------------


@pytest.mark.parametrize("who_status, ct_status, agree", [
    ("not_recruiting", "completed", True),
    ("not_recruiting", "active_not_recruiting", True),
    ("not_recruiting", "terminated", True),
    ("not_recruiting", "not_yet_recruiting", True),
    ("not_recruiting", "recruiting", False),
    ("not_recruiting", "enrolling_by_invitation", False),
    ("recruiting", "enrolling_by_invitation", True),
    ("recruiting", "completed", False),
    ("unknown", "completed", None),
    (None, "completed", None),
])
def test_the_status_scale(who_status, ct_status, agree):
    assert statuses_agree(who_status, ct_status) is agree


def test_the_seed_case_on_real_records(actt):
    """The WHO copy says recruiting; ClinicalTrials.gov has moved on to completed."""
    ct, who = actt
    ct_copy = copy_of(ct, "ctgov", recruitment_status="completed", last_updated="2021-06-30",
                      target_size=440, date_first_enrolment="2020-02-21")
    ct_copy.since = {"recruitment_status": "2021-06-30"}
    who_copy = copy_of(who, "who", last_refreshed="2020-12-12")
    found = {d["field"]: d for d in compare_copies(ct_copy, who_copy)}
    assert set(found) == {"recruitment_status"}
    assert found["recruitment_status"]["summary"] == (
        "the WHO ICTRP copy (NCT04280705), last refreshed 2020-12-12, says recruiting; "
        "ClinicalTrials.gov (NCT04280705) has said completed since 2021-06-30")
    values = [(c["source"], c["value"], c["updated"]) for c in found["recruitment_status"]["copies"]]
    assert values == [("who", "recruiting", "2020-12-12"), ("ctgov", "completed", "2021-06-30")]


def test_real_copies_of_actt_disagree_where_they_do(actt):
    ct, who = actt
    found = {d["field"] for d in compare_copies(copy_of(ct, "ctgov"), copy_of(who, "who"))}
    # v0 of ClinicalTrials.gov (not yet recruiting, 394, start 2020-03-12) against WHO's 7 April copy
    assert found == {"recruitment_status", "target_size", "date_first_enrolment"}


def test_dates_compare_at_the_coarser_precision(actt):
    ct, who = actt
    assert dates_agree("2020-06", "2020-06-15") is True
    assert dates_agree("2020-06", "2020-07-01") is False
    assert dates_agree("2020", "2020-12-31") is True
    assert dates_agree(None, "2020-06") is None
    a = copy_of(ct, "ctgov", date_first_enrolment="2020-02", target_size=440, recruitment_status="recruiting")
    assert compare_copies(a, copy_of(who, "who")) == []           # 2020-02 vs 2020-02-21: same month
    b = copy_of(ct, "ctgov", date_first_enrolment="2020-03", target_size=440, recruitment_status="recruiting")
    assert [d["field"] for d in compare_copies(b, copy_of(who, "who"))] == ["date_first_enrolment"]


def test_a_who_copy_with_no_date_at_all_is_not_compared_on_dates(actt):
    ct, who = actt
    bare = copy_of(who, "who", date_first_enrolment=None, completion_date=None, date_registration=None)
    fields = {d["field"] for d in compare_copies(copy_of(ct, "ctgov", completion_date="2023-04"), bare)}
    assert "date_first_enrolment" not in fields and "completion_date" not in fields


def test_sponsor_and_outcome_count(actt):
    ct, who = actt
    base = dict(recruitment_status="recruiting", target_size=440, date_first_enrolment="2020-02-21")
    same = copy_of(ct, "ctgov", primary_sponsor="National Institute of Allergy and Infectious Diseases (NIAID), Inc.",
                   **base)
    assert compare_copies(same, copy_of(who, "who")) == []
    other = copy_of(ct, "ctgov", primary_sponsor="Gilead Sciences", **base)
    assert [d["field"] for d in compare_copies(other, copy_of(who, "who"))] == ["primary_sponsor"]
    more = copy_of(ct, "ctgov", primary_outcomes=ct["primary_outcomes"] * 2, **base)
    assert [d["field"] for d in compare_copies(more, copy_of(who, "who"))] == ["primary_outcomes"]


def test_national_records_of_one_registry_are_not_compared(who_95):
    eu = [copy_of(r, "who") for t, r in who_95.items() if t.startswith("EUCTR2021-000037-14")]
    assert len(eu) > 1 and discrepancies(eu) == {}


def test_value_since_is_the_first_version_of_the_newest_run(actt):
    ct, _who = actt
    versions = [("2020-02-21", ct), ("2020-03-16", {**ct, "recruitment_status": "recruiting"}),
                ("2020-04-01", {**ct, "recruitment_status": "recruiting", "target_size": 440})]
    assert value_since(versions, "recruitment_status") == "2020-03-16"
    assert value_since(versions, "target_size") == "2020-04-01"


# -- integrity flags -----------------------------------------------------------------------


def test_results_overdue_exactly_twelve_months_is_not_overdue(ctgov):
    rec = ctgov("NCT03418623")  # COMPLETED, no results
    assert rec["results_posted"] is False
    pcd = rec["primary_completion_date"]
    y, m, d = (int(x) for x in pcd.split("-"))
    exactly = date(y + 1, m, d)
    assert results_overdue(rec, exactly, 12) is None
    assert results_overdue(rec, date.fromordinal(exactly.toordinal() + 1), 12) is not None
    assert results_overdue({**rec, "results_posted": True}, date(2030, 1, 1), 12) is None
    assert results_overdue({**rec, "primary_completion_date": None}, date(2030, 1, 1), 12) is None


def test_results_overdue_month_precision_reads_the_last_day(ctgov):
    rec = {**ctgov("NCT03418623"), "primary_completion_date": "2020-06"}
    assert results_overdue(rec, date(2021, 6, 30), 12) is None
    assert results_overdue(rec, date(2021, 7, 1), 12) is not None
    assert months_past("2020", date(2021, 12, 31), 12) is False


def test_results_posted_trial_is_never_overdue(ctgov):
    rec = ctgov("NCT00763412")  # COMPLETED, hasResults
    assert rec["results_posted"] is True and results_overdue(rec, date(2040, 1, 1), 12) is None


def test_stale_status(ctgov):
    rec = ctgov("NCT04267848")  # RECRUITING
    assert rec["recruitment_status"] == "recruiting"
    fresh = date.fromisoformat(rec["last_updated"])
    assert stale_status({**rec, "completion_date": None}, fresh, 6, 24) is None
    late = stale_status({**rec, "completion_date": "2020-06"}, date(2021, 1, 1), 6, 24)
    assert late is not None and "2020-06" in late["summary"]
    assert stale_status({**rec, "completion_date": "2020-06"}, date(2020, 12, 30), 6, 24) is None  # exactly 6 months
    old = stale_status({**rec, "completion_date": None, "last_updated": "2020-01-15"}, date(2022, 1, 16), 6, 24)
    assert old is not None and "last updated 2020-01-15" in old["summary"]
    assert stale_status({**rec, "recruitment_status": "completed", "completion_date": "2000"}, date(2030, 1, 1), 6, 24) is None


def test_retrospective_registration(ctgov):
    rec = ctgov("NCT00184067")  # registered 2005-09-12, started 2004-05
    assert retrospective_registration(rec)["date_first_enrolment"] == "2004-05"
    assert retrospective_registration({**rec, "date_registration": "2004-05-20"}) is None  # same month
    assert retrospective_registration({**rec, "date_registration": "2004-04-30"}) is None
    assert retrospective_registration({**rec, "date_first_enrolment": None}) is None


def test_outcome_switching_on_real_versions(actt, fixtures_dir):
    ct, _who = actt  # start 2020-03-12; primary completion 2023-04-01
    v1 = Version("v1", "2020-02-21", ct)
    reworded = copy.deepcopy(ct)
    reworded["primary_outcomes_detail"][0]["measure"] = reworded["primary_outcomes_detail"][0]["measure"].replace(
        "7-point", "8-point")
    minor = outcome_switching([v1, Version("v2", "2020-04-01", reworded)])
    assert minor["severity"] == "minor" and minor["switches"][0]["change"] == "measure reworded"
    assert (minor["switches"][0]["from"], minor["switches"][0]["to"]) == ("v1", "v2")
    # the same edit before the start date is no switch
    assert outcome_switching([v1, Version("v2", "2020-03-01", reworded)]) is None
    # month-precision: a change in the start month is not after the start
    assert outcome_switching([v1, Version("v2", "2020-03", reworded)]) is None

    timeframe = copy.deepcopy(ct)
    timeframe["primary_outcomes_detail"][0]["time_frame"] = "Day 29"
    got = compare_outcomes(ct, timeframe)
    assert [(s["change"], s["class"]) for s in got] == [("time frame changed", "minor")]

    moved = copy.deepcopy(ct)
    first = moved["primary_outcomes_detail"].pop(0)
    moved["primary_outcomes"] = moved["primary_outcomes"][1:] or ["Time to recovery [Time Frame: Day 29]"]
    moved["primary_outcomes_detail"] = [{"measure": "Time to recovery", "time_frame": "Day 29"}]
    moved["secondary_outcomes_detail"] = [first] + list(moved.get("secondary_outcomes_detail") or [])
    late = outcome_switching([v1, Version("v2", "2023-05-01", moved)])
    changes = {s["change"] for s in late["switches"]}
    assert changes == {"moved from primary to secondary", "added"}
    assert late["severity"] == "major" and late["late"] is True

    emptied = {**ct, "primary_outcomes": [], "primary_outcomes_detail": []}
    assert outcome_switching([v1, Version("v2", "2020-05-01", emptied)]) is None


def test_flags_of_a_real_record(ctgov):
    rec = ctgov("NCT03630471")  # COMPLETED, no results
    got = flags_of([Version("v1", rec["last_updated"], rec)], date(2026, 11, 30), {}, results_due=True)
    assert "results_overdue" in got
    assert "results_overdue" not in flags_of([Version("v1", None, rec)], date(2026, 11, 30), {}, results_due=False)
