"""The part of a record the trial rules read, stored beside each snapshot (pure).

After every run the trial pass (:mod:`pipeline.trial_events`) reads each changed
trial's versions to link records and judge discrepancies and integrity flags.  Whole
records average ~12 KB of JSON (descriptions, criteria, a thousand sites), and
reading 20,000 of them back after a first load cost ~1.3 s of the ~20 s run; the
rules need a few dates, the status, the sizes, the sponsor, the secondary IDs and the
outcome measures.  So each snapshot also stores :func:`facts_of` its record, about a
tenth of its size, and the pass reads that (a snapshot written before the column
existed has none; the pass reads its record instead, which the rules read the same).

The projection keeps the fields the rules read (:data:`FACT_FIELDS`) and every date
(``date_*``, ``last_*``, ``*_date``: so a registry's own last-updated field is kept
without this module knowing it), and cuts the outcome details down to what
:mod:`pipeline.integrity` compares: each outcome's measure and time frame.  The
secondary IDs are stored beside the facts, for linking.
"""

from __future__ import annotations

from typing import Any

from pipeline.record import Record

#: The fields the trial rules read (pipeline.integrity, pipeline.crosscheck), besides
#: every date (:func:`_is_date_field`: a registry's own last-updated field among them).
FACT_FIELDS: frozenset[str] = frozenset({
    "recruitment_status", "target_size", "primary_sponsor", "results_posted",
    "primary_outcomes", "primary_outcomes_detail", "secondary_outcomes", "secondary_outcomes_detail",
})


def _is_date_field(name: str) -> bool:
    return name.startswith(("date_", "last_")) or name.endswith("_date")


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
    out = {k: v for k, v in record.items() if v is not None and (k in FACT_FIELDS or _is_date_field(k))}
    if record.get("primary_outcomes_detail"):
        out["primary_outcomes_detail"] = _outcome_measures(record["primary_outcomes_detail"], time_frame=True)
    if record.get("secondary_outcomes_detail"):
        # The rules match secondary outcomes by measure only; the lines are then not read.
        out["secondary_outcomes_detail"] = _outcome_measures(record["secondary_outcomes_detail"], time_frame=False)
        out.pop("secondary_outcomes", None)
    return out
