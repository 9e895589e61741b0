"""The diff rules, table-driven, plus properties on arbitrary records."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.diff import (
    apply_changes,
    content_hash,
    diff_records,
    looks_like_parse_failure,
    records_equivalent,
)
from pipeline.record import empty_record


def rec(**fields):
    r = empty_record("NCT01234567", "ctgov", "ClinicalTrials.gov")
    r.update(fields)
    return r


CASES = [
    # (name, old fields, new fields, expected [(field, significance)])
    ("identical", {}, {}, []),
    ("status", {"recruitment_status": "recruiting"}, {"recruitment_status": "completed"}, [("recruitment_status", "status")]),
    ("enrollment", {"target_size": 20}, {"target_size": 60}, [("target_size", "enrollment")]),
    ("date precision kept", {"completion_date": "2024-09"}, {"completion_date": "2024-09-30"}, [("completion_date", "dates")]),
    ("outcome rewritten", {"primary_outcomes": ["Mortality [Time Frame: 28 days]"]},
     {"primary_outcomes": ["Ventilator-free days [Time Frame: 28 days]"]}, [("primary_outcomes", "outcomes")]),
    ("whitespace only", {"public_title": "A  study\n of X"}, {"public_title": " A study of X" + " " * 2000}, []),
    ("list reordered", {"countries": ["China", "France"]}, {"countries": ["France", "China"]}, []),
    ("list item whitespace", {"conditions": ["COVID-19 "]}, {"conditions": ["COVID-19"]}, []),
    ("none vs empty list", {"secondary_ids": []}, {"secondary_ids": None}, []),
    ("none vs empty string", {"acronym": None}, {"acronym": ""}, []),
    ("noise only", {"last_updated": "2024-01-01"}, {"last_updated": "2025-01-01"}, []),
    ("new site", {"locations": ["A, Paris, France"]}, {"locations": ["A, Paris, France", "B, Lyon, France"]},
     [("locations", "sites")]),
    ("sponsor", {"primary_sponsor": "X"}, {"primary_sponsor": "Y"}, [("primary_sponsor", "sponsor")]),
    ("criteria re-wrapped", {"inclusion_criteria": "1. Adults\n2. Consent"}, {"inclusion_criteria": "1. Adults 2. Consent"}, []),
    ("criteria edited", {"inclusion_criteria": "Adults 18-65"}, {"inclusion_criteria": "Adults 18-75"},
     [("inclusion_criteria", "eligibility")]),
    ("results posted", {"results_posted": False}, {"results_posted": True}, [("results_posted", "results")]),
    ("other field", {"study_design": "Single arm"}, {"study_design": "Randomized"}, [("study_design", "other")]),
    ("field only in new record", {}, {"why_stopped": "Funding"}, [("why_stopped", "status")]),
    ("two changes", {"target_size": 1, "phase": "Phase 1"}, {"target_size": 2, "phase": "Phase 2"},
     [("target_size", "enrollment"), ("phase", "other")]),
]


@pytest.mark.parametrize("name,old,new,expected", CASES, ids=[c[0] for c in CASES])
def test_diff_cases(name, old, new, expected):
    a, b = rec(**old), rec(**new)
    changes = diff_records(a, b)
    assert [(c["field"], c["significance"]) for c in changes] == expected
    assert (content_hash(a) == content_hash(b)) == (not expected)


def test_list_change_names_added_and_removed_items():
    a = rec(countries=["China", "France", "Chile"])
    b = rec(countries=["France", "Chile", "Peru", "Peru"])
    (change,) = diff_records(a, b)
    assert change["added"] == ["Peru", "Peru"]
    assert change["removed"] == ["China"]
    assert change["old"] == ["China", "France", "Chile"] and change["new"] == b["countries"]


def test_list_of_dicts_compared_as_collection():
    a = rec(contacts=[{"name": "A", "type": "Public"}, {"name": "B", "type": "Scientific"}])
    b = rec(contacts=[{"type": "Scientific", "name": "B"}, {"name": "A", "type": "Public"}])
    assert diff_records(a, b) == []


def test_parse_failure_guard():
    full = rec(
        public_title="T", scientific_title="S", recruitment_status="recruiting", date_registration="2020-01-01",
        target_size=20, primary_sponsor="X", countries=["China"], conditions=["C"], interventions=["I"],
        primary_outcomes=["O"], study_type="Interventional", inclusion_criteria="adults",
    )
    gutted = rec(public_title="T", trial_id="NCT01234567")
    assert looks_like_parse_failure(full, gutted)
    edited = dict(full, target_size=30, countries=[])
    assert not looks_like_parse_failure(full, edited)
    # a nearly empty old record cannot "lose most fields"
    assert not looks_like_parse_failure(rec(public_title="T"), rec())


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
value = st.one_of(
    st.none(), text, st.integers(-10, 10_000), st.booleans(),
    st.lists(text, max_size=5),
    st.lists(st.dictionaries(st.sampled_from(["name", "type", "x"]), text, max_size=3), max_size=3),
)
records = st.dictionaries(
    st.sampled_from(["public_title", "target_size", "countries", "contacts", "recruitment_status",
                     "inclusion_criteria", "results_posted", "locations", "why_stopped", "last_updated"]),
    value,
).map(lambda d: rec(**d))


@settings(max_examples=300, deadline=None)
@given(records)
def test_diff_of_a_record_with_itself_is_empty(a):
    assert diff_records(a, a) == []


@settings(max_examples=300, deadline=None)
@given(records, records)
def test_applying_recorded_changes_rebuilds_the_new_record(a, b):
    changes = diff_records(a, b)
    assert records_equivalent(apply_changes(a, changes), b)
    assert (changes == []) == (content_hash(a) == content_hash(b))


@pytest.mark.parametrize("before,after", [(False, 0), (True, 1), (1, 1.0), ([0], [False])])
def test_values_equal_in_python_but_not_in_json_are_a_change(before, after):
    """``False == 0`` in Python; the content hash tells them apart, so the diff must too.

    Otherwise a new snapshot (hash changed) would be written with no change row."""
    a, b = rec(results_posted=before), rec(results_posted=after)
    changes = diff_records(a, b)
    assert (changes == []) == (content_hash(a) == content_hash(b))
    assert [c["field"] for c in changes] == ["results_posted"]


def test_python_equal_values_inside_lists_are_a_change_too():
    """[0] == [False] in Python: a fast path on ``==`` would bring the bug back."""
    a, b = rec(conditions=[0]), rec(conditions=[False])
    assert [c["field"] for c in diff_records(a, b)] == ["conditions"]
    assert content_hash(a) != content_hash(b)


# -- the hash's folding of text lists (a fast path in C for clean ASCII lists) -----------

#: Characters that make a string unfolded one way or another: every kind of whitespace
#: str.split() knows (ASCII and not), controls it does not split on, non-ASCII letters.
_TEXT = st.text(alphabet=st.sampled_from(list("ab `,") + [" ", "\t", "\n", "\x0b", "\x1c", "\x1f", "\x01",
                                                         "\x7f", "\x85", "\xa0", "\u2028", "\u3000", "é"]),
                max_size=12)


def _folded_by_hand(items):
    """What canonical() promises for a list of text: each folded, empties dropped, sorted."""
    folded = sorted(t for t in (" ".join(v.split()) for v in items) if t)
    return folded or None


@settings(max_examples=2000, deadline=None)
@given(st.lists(_TEXT, max_size=6))
def test_a_text_list_is_folded_sorted_and_cleared_of_empties_whatever_its_characters(items):
    from pipeline.diff import canonical

    assert canonical(items) == _folded_by_hand(items)


@pytest.mark.parametrize("items,expected", [
    (["b", "a"], ["a", "b"]),
    (["a ", "b"], ["a", "b"]),
    (["a", ""], ["a"]),
    (["a  b"], ["a b"]),
    (["a\tb", "c"], ["a b", "c"]),
    (["x\x1fy"], ["x y"]),
    (["caf\xe9  au lait"], ["caf\xe9 au lait"]),
    (["", " "], None),
])
def test_text_list_folding_examples(items, expected):
    from pipeline.diff import canonical

    assert canonical(items) == expected


@settings(max_examples=2000, deadline=None)
@given(_TEXT)
def test_a_string_is_folded_like_split_and_join_whatever_its_characters(text):
    from pipeline.diff import canonical

    assert canonical(text) == (" ".join(text.split()) or None)
