"""The part of a record the trial rules read, stored beside each snapshot (pure).

After every run the trial pass (:mod:`pipeline.trial_events`) reads each changed
trial's versions to link records and judge discrepancies and integrity flags.  Whole
records average ~12 KB of JSON (descriptions, criteria, a thousand sites), and
reading 20,000 of them back after a first load cost ~1.3 s of the ~20 s run; the
rules need a few dates, the status, the sizes, the sponsor, the secondary IDs and the
outcome measures.  So each snapshot also stores :func:`facts_of` its record, about a
tenth of its size, and the pass reads that (a snapshot written before the column
existed has none; the pass reads its record instead, which the rules read the same).

The projection keeps every field but the bulky free text listed in :data:`BULKY`
(so a registry's own small fields, such as its last-updated field, are kept without
this module knowing them), and cuts the outcome details down to what
:mod:`pipeline.integrity` compares: each outcome's measure and time frame.
"""

from __future__ import annotations

from typing import Any

from pipeline.record import Record

#: Fields no trial rule reads, and most of a record's size.
BULKY: frozenset[str] = frozenset({
    "detailed_description", "brief_summary", "locations", "arm_groups", "inclusion_criteria",
    "exclusion_criteria", "other_outcomes", "overall_officials", "central_contacts", "study_design",
    "ipd_sharing", "scientific_title", "keywords", "conditions", "interventions", "countries", "url",
})


def _outcome_measures(detail: Any, *, time_frame: bool) -> list[dict[str, Any]]:
    out = []
    for d in detail:
        if isinstance(d, dict):
            item = {"measure": d.get("measure")}
            if time_frame:
                item["time_frame"] = d.get("time_frame")
            out.append(item)
    return out


def facts_of(record: Record) -> dict[str, Any]:
    """The record without its bulky text; outcome details cut to measure and time frame."""
    out = {k: v for k, v in record.items() if k not in BULKY}
    if record.get("primary_outcomes_detail"):
        out["primary_outcomes_detail"] = _outcome_measures(record["primary_outcomes_detail"], time_frame=True)
    if record.get("secondary_outcomes_detail"):
        # The rules match secondary outcomes by measure only; the lines are then not read.
        out["secondary_outcomes_detail"] = _outcome_measures(record["secondary_outcomes_detail"], time_frame=False)
        out.pop("secondary_outcomes", None)
    return out
