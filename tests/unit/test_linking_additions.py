"""Linking records added to a linked store gives the links a full relink would (pure)."""

from __future__ import annotations

import random

import pytest

from pipeline.linking import key_hits, link_additions, link_records, record_keys

IDS = [f"NCT{n:08d}" for n in range(1, 25)] + [
    "EUCTR2020-001052-18-DE", "EUCTR2020-001052-18-FR", "2020-001052-18", "CTIS2023-507385-11-00",
    "ISRCTN12345678", "CTRI/2020/01/000001", "ORG-1", "org 1", "junk", "ab",
]


def additions(old: dict, new: dict) -> dict:
    """link_additions fed as the trial pass feeds it: the hits of the new records' keys among the old."""
    before = link_records(old)
    keys = set().union(*(set.union(*record_keys(m[0], r["secondary_ids"])) for m, r in new.items())) if new else set()
    hits = key_hits(keys, {m: r["secondary_ids"] for m, r in old.items()})
    members_of: dict = {}
    for member, key in before.items():
        members_of.setdefault(key, []).append(member)
    return {**before, **link_additions(new, hits, before, members_of)}


@pytest.mark.parametrize("seed", range(40))
def test_adding_records_links_them_as_a_full_relink_would(seed):
    rnd = random.Random(seed)
    for _ in range(100):
        records = {}
        for _ in range(rnd.randint(1, 12)):
            records[(rnd.choice(IDS), rnd.choice(["ctgov", "who"]))] = {
                "secondary_ids": rnd.sample(IDS, rnd.randint(0, 3))}
        members = sorted(records, key=lambda m: rnd.random())
        cut = rnd.randint(0, len(members))
        old = {m: records[m] for m in members[:cut]}
        new = {m: records[m] for m in members[cut:]}
        assert additions(old, new) == link_records(records)


def test_a_who_record_naming_a_stored_nct_id_joins_its_trial_and_two_trials_can_merge():
    old = {("NCT00000001", "ctgov"): {"secondary_ids": ["2020-001052-18"]},
           ("ISRCTN12345678", "who"): {"secondary_ids": []}}
    new = {("EUCTR2020-001052-18-DE", "who"): {"secondary_ids": ["ISRCTN12345678"]}}
    keys = additions(old, new)
    assert set(keys.values()) == {"NCT00000001"}  # the EU record joins both: one trial
    assert keys == link_records({**old, **new})


def test_two_records_with_the_same_secondary_id_are_not_linked_by_it():
    old = {("NCT00000001", "ctgov"): {"secondary_ids": ["ORG-1"]}}
    new = {("NCT00000002", "ctgov"): {"secondary_ids": ["ORG-1"]}}
    assert additions(old, new) == {("NCT00000001", "ctgov"): "NCT00000001", ("NCT00000002", "ctgov"): "NCT00000002"}
