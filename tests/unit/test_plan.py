"""The pure update planner: first sighting, unchanged, changed, missing, reappeared, broken page."""

from __future__ import annotations

from pipeline.diff import content_hash
from pipeline.record import empty_record
from pipeline.plan import TrialState, plan_found, plan_missing

NOW = "2026-01-01T00:00:00Z"


def rec(**fields):
    r = empty_record("NCT01234567", "ctgov", "ClinicalTrials.gov")
    r.update(public_title="T", scientific_title="S", recruitment_status="recruiting", target_size=10,
             primary_sponsor="X", conditions=["C"], interventions=["I"], primary_outcomes=["O"],
             study_type="Interventional", countries=["China"])
    r.update(fields)
    return r


def state(record, st="present"):
    return TrialState("NCT01234567", "ctgov", st, 1, content_hash(record), 0, record=record)


def plan(old_state, new, old_record=None):
    return plan_found(old_state, new, old_record=old_record, raw=b"{}", raw_format="json", parser_version=1, now=NOW)


def test_first_sighting_is_a_snapshot_not_changes():
    u = plan(None, rec())
    assert u.outcome == "new" and u.new_snapshot and u.changes == []


def test_unchanged_adds_nothing():
    r = rec()
    u = plan(state(r), rec(last_updated="2030-01-01"))
    assert u.outcome == "unchanged" and not u.new_snapshot and not u.changes and u.raw is None


def test_changed_records_field_changes():
    r = rec()
    u = plan(state(r), rec(recruitment_status="completed"), old_record=r)
    assert u.outcome == "changed" and u.new_snapshot
    assert [(c["field"], c["old"], c["new"]) for c in u.changes] == [("recruitment_status", "recruiting", "completed")]


def test_missing_after_present_is_one_change_then_quiet():
    r = rec()
    u = plan_missing(state(r), "NCT01234567", "ctgov", NOW)
    assert [c["kind"] for c in u.changes] == ["missing"]
    u2 = plan_missing(state(r, "missing"), "NCT01234567", "ctgov", NOW)
    assert u2.changes == []
    assert plan_missing(None, "NCT01234567", "ctgov", NOW).changes == []


def test_reappeared_is_one_change_not_a_flood():
    r = rec()
    u = plan(state(r, "missing"), rec(), old_record=r)
    assert u.outcome == "reappeared" and [c["kind"] for c in u.changes] == ["reappeared"]
    u2 = plan(state(r, "missing"), rec(target_size=11), old_record=r)
    assert [c["kind"] for c in u2.changes] == ["reappeared", "field"]


def test_a_gutted_page_is_a_failure_not_deletions():
    r = rec()
    gutted = empty_record("NCT01234567", "ctgov", "ClinicalTrials.gov")
    gutted["public_title"] = "T"
    u = plan(state(r), gutted, old_record=r)
    assert u.outcome == "failed" and u.changes == [] and "lost most" in u.error
