"""The one record shape both registries normalize into.

The fields follow the WHO Trial Registration Data Set (v1.3.1) so that a
ClinicalTrials.gov study and a WHO portal page of the same trial can be read,
stored and diffed the same way.  A normalized record is a plain ``dict`` of
JSON-able values (str, int, bool, None, lists of str, lists of dicts), so it can
be hashed canonically, stored as JSON and compared field by field without any
class machinery in the hot path.

Conventions every normalizer follows:

* Missing information is ``None`` for scalars and ``[]`` for lists, never "".
* Text is whitespace-normalized at the edges (registries pad titles to 2,000
  characters); single-line fields have internal runs of whitespace collapsed,
  multi-line fields (criteria) keep their line breaks.
* Dates are ISO 8601 at the precision the registry gives ("2024-09" stays a month).
* ``recruitment_status`` uses :data:`STATUS_VOCABULARY`; the registry's own wording is
  kept in ``recruitment_status_raw``.
* ``target_size`` is an int where the registry gives one; the wording is kept in
  ``target_size_raw``.
"""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]

#: Keys every normalized record has, whatever the source.
COMMON_FIELDS: tuple[str, ...] = (
    "trial_id",
    "source",
    "registry",
    "public_title",
    "scientific_title",
    "acronym",
    "recruitment_status",
    "recruitment_status_raw",
    "date_registration",
    "date_first_enrolment",
    "completion_date",
    "target_size",
    "target_size_raw",
    "primary_sponsor",
    "secondary_sponsors",
    "funding",
    "countries",
    "conditions",
    "interventions",
    "primary_outcomes",
    "secondary_outcomes",
    "secondary_ids",
    "study_type",
    "study_design",
    "phase",
    "age_min",
    "age_max",
    "gender",
    "inclusion_criteria",
    "exclusion_criteria",
    "results_posted",
    "url",
    "last_updated",
)

#: Source-only extras (present only in records of that source).
CTGOV_EXTRA_FIELDS: tuple[str, ...] = (
    "primary_completion_date",
    "why_stopped",
    "enrollment_type",
    "brief_summary",
    "detailed_description",
    "keywords",
    "arm_groups",
    "primary_outcomes_detail",
    "secondary_outcomes_detail",
    "other_outcomes",
    "healthy_volunteers",
    "locations",
    "overall_officials",
    "central_contacts",
    "ipd_sharing",
    "responsible_party",
    "date_results_first_posted",
)
WHO_EXTRA_FIELDS: tuple[str, ...] = (
    "prospective_registration",
    "contacts",
    "ethics_review",
    "results_summary",
    "results_url",
    "results_date_posted",
    "last_refreshed",
)

#: The registry's recruitment vocabulary, shared by both sources (CT.gov codes, lower case).
STATUS_VOCABULARY: frozenset[str] = frozenset(
    {
        "recruiting",
        "not_yet_recruiting",
        "active_not_recruiting",
        "completed",
        "terminated",
        "withdrawn",
        "suspended",
        "enrolling_by_invitation",
        "unknown",
        "not_recruiting",  # WHO says only "Not recruiting": not known to be active or closed
        # ClinicalTrials.gov expanded-access statuses
        "available",
        "no_longer_available",
        "temporarily_not_available",
        "approved_for_marketing",
        "withheld",
    }
)

#: How a person reads each status code ("active_not_recruiting" -> "Active, not recruiting"),
#: ClinicalTrials.gov's own wording.  The SQL views use the same labels (``store.schema``).
STATUS_LABELS: dict[str, str] = {
    "recruiting": "Recruiting",
    "not_yet_recruiting": "Not yet recruiting",
    "active_not_recruiting": "Active, not recruiting",
    "completed": "Completed",
    "terminated": "Terminated",
    "withdrawn": "Withdrawn",
    "suspended": "Suspended",
    "enrolling_by_invitation": "Enrolling by invitation",
    "unknown": "Unknown status",
    "not_recruiting": "Not recruiting",
    "available": "Available",
    "no_longer_available": "No longer available",
    "temporarily_not_available": "Temporarily not available",
    "approved_for_marketing": "Approved for marketing",
    "withheld": "Withheld",
}

#: Kinds of change-log row that are edits of one record (``query``: the record started or
#: stopped matching a query watch); any other kind (``discrepancy`` between copies of a
#: trial, integrity ``flag``) is an event raised (``new`` holds it) or resolved (``old``
#: does), an object with a human ``summary``.
RECORD_KINDS: frozenset[str] = frozenset({"field", "detail", "missing", "reappeared", "query"})

#: Fields whose values are codes of :data:`STATUS_VOCABULARY`.
STATUS_FIELDS: frozenset[str] = frozenset({"recruitment_status"})


def status_label(code: str) -> str:
    """``active_not_recruiting`` -> ``Active, not recruiting``; a code not in the vocabulary as itself."""
    return STATUS_LABELS.get(code, code)


def readable_value(field: str, value: Any) -> Any:
    """``value`` of ``field`` as people read it: status codes as their labels, the rest unchanged."""
    if field in STATUS_FIELDS and isinstance(value, str):
        return status_label(value)
    return value


assert set(STATUS_LABELS) == STATUS_VOCABULARY


#: Fields that move without any change by the sponsor: kept in snapshots, never a change.
NOISE_FIELDS: frozenset[str] = frozenset({"last_updated", "last_refreshed"})

#: Significance of a change, by field.  Anything not listed is "other".
SIGNIFICANCE_BY_FIELD: dict[str, str] = {
    "recruitment_status": "status",
    "recruitment_status_raw": "status",
    "why_stopped": "status",
    "_record": "status",  # missing / reappeared
    "target_size": "enrollment",
    "target_size_raw": "enrollment",
    "enrollment_type": "enrollment",
    "date_registration": "dates",
    "date_first_enrolment": "dates",
    "completion_date": "dates",
    "primary_completion_date": "dates",
    "primary_outcomes": "outcomes",
    "secondary_outcomes": "outcomes",
    "primary_outcomes_detail": "outcomes",
    "secondary_outcomes_detail": "outcomes",
    "other_outcomes": "outcomes",
    "inclusion_criteria": "eligibility",
    "exclusion_criteria": "eligibility",
    "age_min": "eligibility",
    "age_max": "eligibility",
    "gender": "eligibility",
    "healthy_volunteers": "eligibility",
    "primary_sponsor": "sponsor",
    "secondary_sponsors": "sponsor",
    "funding": "sponsor",
    "responsible_party": "sponsor",
    "countries": "sites",
    "locations": "sites",
    "results_posted": "results",
    "results_summary": "results",
    "results_url": "results",
    "results_date_posted": "results",
    "date_results_first_posted": "results",
}

#: Significances in the order reports rank them (most significant first).
SIGNIFICANCE_ORDER: tuple[str, ...] = (
    "status",
    "query",  # a trial started or stopped matching a query watch (kind 'query')
    "outcomes",
    "enrollment",
    "dates",
    "eligibility",
    "sponsor",
    "sites",
    "results",
    "other",
)


def significance_of(field: str) -> str:
    """The significance class of a change to ``field``."""
    return SIGNIFICANCE_BY_FIELD.get(field, "other")


def empty_record(trial_id: str, source: str, registry: str | None) -> Record:
    """A record with every common key present and empty, for normalizers to fill."""
    record: Record = {name: None for name in COMMON_FIELDS}
    for name in (
        "secondary_sponsors",
        "funding",
        "countries",
        "conditions",
        "interventions",
        "primary_outcomes",
        "secondary_outcomes",
        "secondary_ids",
    ):
        record[name] = []
    record["trial_id"] = trial_id
    record["source"] = source
    record["registry"] = registry
    return record


#: Fields whose loss, all at once, marks a broken page rather than a real edit (see
#: :func:`pipeline.diff.looks_like_parse_failure`).
SUBSTANTIVE_FIELDS: tuple[str, ...] = (
    "public_title",
    "scientific_title",
    "recruitment_status",
    "date_registration",
    "date_first_enrolment",
    "target_size",
    "primary_sponsor",
    "countries",
    "conditions",
    "interventions",
    "primary_outcomes",
    "study_type",
    "inclusion_criteria",
)
