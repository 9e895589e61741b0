"""Alert rules: which changes and failure alerts a channel wants (pure)."""

from __future__ import annotations

from pipeline.alert_rules import matches, wants_failure
from pipeline.config import parse_config


def rules(*tables):
    config = parse_config({"watch": {"tags": {"onc": ["NCT01000001", "NCT01000002"]}}, "alerts": list(tables)})
    return config.alerts, config.tags


def change(trial="NCT01000001", field="recruitment_status", significance="status", source="ctgov", **kw):
    return {"trial_id": trial, "source": source, "field": field, "significance": significance,
            "backfilled": False, **kw}


HOOK = {"channel": "webhook", "url": "http://127.0.0.1:9/hook"}


def test_default_rule_takes_all_but_other_and_never_backfilled():
    (rule,), tags = rules(HOOK)
    assert matches(rule, change(), tags)
    assert matches(rule, change(field="countries", significance="sites"), tags)
    assert not matches(rule, change(field="acronym", significance="other"), tags)
    assert not matches(rule, change(backfilled=True), tags)
    assert not matches(rule, change(field="recruitment_status_raw", kind="detail"), tags)


def test_significance_fields_trials_tags_sources():
    (status_only, fields, ten, tagged, who_only), tags = rules(
        {**HOOK, "name": "a", "significance": ["status", "outcomes"]},
        {**HOOK, "name": "b", "fields": ["target_size"]},
        {**HOOK, "name": "c", "trials": ["NCT01000003"], "significance": ["status"]},
        {**HOOK, "name": "d", "tags": ["onc"]},
        {**HOOK, "name": "e", "sources": ["who"]},
    )
    assert matches(status_only, change(), tags)
    assert matches(status_only, change(field="primary_outcomes", significance="outcomes"), tags)
    assert not matches(status_only, change(field="target_size", significance="enrollment"), tags)

    assert matches(fields, change(field="target_size", significance="enrollment"), tags)
    assert not matches(fields, change(), tags)

    assert matches(ten, change(trial="NCT01000003"), tags)
    assert not matches(ten, change(trial="NCT01000001"), tags)

    assert matches(tagged, change(trial="NCT01000002"), tags)
    assert not matches(tagged, change(trial="NCT01000003"), tags)

    assert matches(who_only, change(source="who"), tags)
    assert not matches(who_only, change(source="ctgov"), tags)


def test_failure_alerts_follow_trial_filters_and_can_be_turned_off():
    (tagged, off), tags = rules({**HOOK, "name": "a", "tags": ["onc"]}, {**HOOK, "name": "b", "failures": False})
    event = {"trial_id": "NCT01000001", "source": "ctgov", "kind": "failing"}
    assert wants_failure(tagged, event, tags)
    assert not wants_failure(tagged, {**event, "trial_id": "NCT01000009"}, tags)
    assert not wants_failure(off, event, tags)


def test_kinds_can_select_query_events_like_any_other_kind():
    (rule,), tags = rules({**HOOK, "kinds": ["query"], "significance": ["query", "status"]})
    joined = change(field="covid-recruiting", significance="query", kind="query",
                    new={"state": "member", "summary": "now matches query covid-recruiting"})
    assert matches(rule, joined, tags)
    assert not matches(rule, change(), tags)  # a field change: not a kind this rule lists
