"""pipeline.sources.ctgov.parse against recorded ClinicalTrials.gov API v2 responses.

Expected values in the tables below were read off the fixture JSON by hand (not computed by
the code under test).  Every file in fixtures/ctgov/v2/*.json must have a row.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import ParseError
from pipeline.sources.ctgov.parse import (
    html_to_text,
    normalize_study,
    parse_history_index,
    parse_history_version,
    parse_studies_page,
    parse_study,
)
from pipeline.record import COMMON_FIELDS, CTGOV_EXTRA_FIELDS, STATUS_VOCABULARY

ALL_FIELDS = set(COMMON_FIELDS) | set(CTGOV_EXTRA_FIELDS)
US = ["United States"]

# nct: (status, target_size, date_registration, start, primary_completion, completion,
#       last_updated, results_first_posted, n_primary, n_secondary, n_other, n_locations,
#       countries, n_conditions, n_interventions, results_posted, phase, study_type, gender,
#       age_min, age_max, primary_sponsor, has_exclusion_section)
EXPECTED: dict[str, tuple] = {
    "NCT00184067": ("terminated", 23, "2005-09-12", "2004-05", "2007-04", "2009-09",
                    "2014-05-21", None, 0, 0, 0, 1, US, 1, 1, False, "Phase 2",
                    "Interventional", "All", "18 Years", None,
                    "University of Southern California", True),
    "NCT00763412": ("completed", 31, "2008-09-29", "2006-11", "2013-01", "2013-01",
                    "2017-06-05", "2017-06-05", 3, 6, 0, 1, US, 2, 2, True, "N/A",
                    "Interventional", "All", "12 Years", "24 Years", "Arbelaez, Ana Maria", True),
    "NCT00973089": ("withdrawn", 0, "2009-09-06", "2010-05", "2015-03", "2015-03",
                    "2015-08-19", None, 1, 0, 0, 1, ["Israel"], 1, 1, False, "N/A",
                    "Interventional", "All", "5 Years", "8 Years",
                    "Hadassah Medical Organization", True),
    "NCT02210780": ("completed", 194, "2014-08-05", "2014-08-05", "2015-09-15", "2015-09-15",
                    "2020-05-07", "2020-05-07", 1, 10, 0, 42, US, 1, 2, True, "Phase 2",
                    "Interventional", "All", "18 Years", "64 Years",
                    "Regeneron Pharmaceuticals", True),
    "NCT02299791": ("completed", 4856, "2014-11-07", "2010-09", "2014-05", "2014-05",
                    "2017-10-04", "2017-10-04", 1, 0, 0, 0, [], 2, 2, True, "N/A",
                    "Interventional", "All", "18 Years", "75 Years", "Kaiser Permanente", True),
    "NCT02552212": ("completed", 317, "2015-09-15", "2015-09", "2018-05", "2020-05",
                    "2022-08-18", "2020-08-17", 11, 20, 0, 105,
                    ["Australia", "Bulgaria", "Canada", "Czechia", "Hungary", "Poland",
                     "Russian Federation", "Taiwan", "United States"],
                    3, 2, True, "Phase 3", "Interventional", "All", "18 Years", None,
                    "UCB BIOSCIENCES GmbH", True),
    "NCT03064438": ("completed", 40, "2017-02-22", "2017-11-28", "2018-06-05", "2018-06-18",
                    "2021-08-23", "2021-08-23", 1, 7, 2, 2, US, 1, 2, True, "Phase 2",
                    "Interventional", "All", "18 Years", None, "Accuitis, Inc.", True),
    "NCT03418623": ("completed", 24, "2018-01-08", "2018-03-08", "2020-03-13", "2020-03-13",
                    "2020-10-08", None, 1, 2, 0, 1, US, 1, 2, False, "Phase 2",
                    "Interventional", "All", "21 Years", "40 Years",
                    "Laboratorio Farmaceutico Ct S.r.l.", False),
    "NCT03475563": ("unknown", 100, "2018-03-16", "2018-08-16", "2019-12-30", "2019-12-30",
                    "2019-11-27", None, 3, 4, 0, 3, ["Spain"], 1, 1, False, None,
                    "Observational", "All", "18 Years", None,
                    "Hospital Universitari Vall d'Hebron Research Institute", True),
    "NCT03630471": ("completed", 250, "2018-08-06", "2018-08-20", "2019-01-20", "2019-02-28",
                    "2019-05-21", None, 2, 9, 0, 1, ["India"], 1, 2, False, "N/A",
                    "Interventional", "All", "13 Years", "20 Years", "Sangath", True),
    "NCT03934567": ("active_not_recruiting", 87, "2019-04-29", "2020-04-22", "2025-01-29",
                    "2025-10-30", "2025-04-10", None, 1, 2, 0, 26, ["China"], 1, 1, False,
                    "Phase 2", "Interventional", "All", "18 Years", None,
                    "Xynomic Pharmaceuticals, Inc.", True),
    "NCT04207047": ("unknown", 3, "2019-12-17", "2018-10-02", "2018-10-31", "2020-03-31",
                    "2019-12-20", None, 1, 1, 0, 1, US, 1, 5, False, "N/A",
                    "Interventional", "All", "18 Years", None, "LUTRONIC Corporation", True),
    "NCT04267848": ("recruiting", 1210, "2020-02-12", "2020-06-16", "2025-12-15", "2025-12-15",
                    "2025-09-10", None, 1, 4, 3, 1148, ["Guam", "United States"], 6, 12, False,
                    "Phase 3", "Interventional", "All", "18 Years", None,
                    "National Cancer Institute (NCI)", False),
    "NCT04431453": ("completed", 59, "2020-06-08", "2020-07-21", "2023-02-10", "2023-02-10",
                    "2023-12-22", "2023-12-22", 4, 10, 0, 32,
                    ["Italy", "Spain", "United Kingdom", "United States"], 1, 1, True,
                    "Phase 2/Phase 3", "Interventional", "All", None, "18 Years",
                    "Gilead Sciences", True),
    "NCT05147467": ("recruiting", 75, "2021-11-24", "2021-12-28", "2024-09", "2024-12",
                    "2024-01-23", None, 1, 9, 2, 11, ["China"], 2, 1, False, "Phase 2",
                    "Interventional", "All", "18 Years", None, "Ascentage Pharma Group Inc.", True),
    "NCT05594173": ("completed", 20, "2022-10-21", "2019-09-13", "2020-12-20", "2020-12-20",
                    "2022-11-21", "2022-11-21", 2, 0, 0, 1, ["Canada"], 1, 1, True, None,
                    "Observational", "All", "18 Years", "60 Years",
                    "University Health Network, Toronto", True),
    "NCT06171568": ("not_yet_recruiting", 400, "2023-12-06", "2024-02-01", "2025-02-01",
                    "2025-02-01", "2023-12-14", None, 1, 7, 0, 1, ["France"], 1, 1, False, None,
                    "Observational", "All", "18 Years", None,
                    "Assistance Publique - Hôpitaux de Paris", False),
    "NCT06388018": ("recruiting", 325, "2024-04-24", "2025-01-16", "2027-01-16", "2027-01-16",
                    "2024-07-15", None, 13, 0, 0, 1, US, 3, 8, False, "Phase 2",
                    "Interventional", "Female", "18 Years", None, "NRG Oncology", True),
}


@functools.lru_cache(maxsize=None)
def _load(path: str) -> dict:
    return normalize_study(parse_study(Path(path).read_bytes()))


@pytest.fixture(scope="module")
def v2_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "ctgov" / "v2"


def record_of(v2_dir: Path, nct: str) -> dict:
    return _load(str(v2_dir / f"{nct}.json"))


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_every_v2_fixture_has_a_table_row(v2_dir: Path) -> None:
    assert sorted(p.stem for p in v2_dir.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("nct", sorted(EXPECTED))
def test_v2_fixture_normalizes_to_expected(v2_dir: Path, nct: str) -> None:
    (status, size, registered, start, primary_completion, completion, updated, results_date,
     n_primary, n_secondary, n_other, n_locations, countries, n_conditions, n_interventions,
     results_posted, phase, study_type, gender, age_min, age_max, sponsor,
     has_exclusion) = EXPECTED[nct]
    rec = record_of(v2_dir, nct)

    assert set(rec) == ALL_FIELDS
    assert rec["trial_id"] == nct
    assert rec["source"] == "ctgov"
    assert rec["registry"] == "ClinicalTrials.gov"
    assert rec["url"] == f"https://clinicaltrials.gov/study/{nct}"
    assert rec["recruitment_status"] == status
    assert rec["recruitment_status"] in STATUS_VOCABULARY
    assert rec["recruitment_status_raw"] == status.upper()
    assert rec["target_size"] == size
    assert rec["target_size_raw"] == str(size)
    assert rec["date_registration"] == registered
    assert rec["date_first_enrolment"] == start
    assert rec["primary_completion_date"] == primary_completion
    assert rec["completion_date"] == completion
    assert rec["last_updated"] == updated
    assert rec["date_results_first_posted"] == results_date
    assert len(rec["primary_outcomes"]) == len(rec["primary_outcomes_detail"]) == n_primary
    assert len(rec["secondary_outcomes"]) == len(rec["secondary_outcomes_detail"]) == n_secondary
    assert len(rec["other_outcomes"]) == n_other
    assert len(rec["locations"]) == n_locations
    assert rec["countries"] == countries
    assert len(rec["conditions"]) == n_conditions
    assert len(rec["interventions"]) == n_interventions
    assert rec["results_posted"] is results_posted
    assert rec["phase"] == phase
    assert rec["study_type"] == study_type
    assert rec["gender"] == gender
    assert rec["age_min"] == age_min
    assert rec["age_max"] == age_max
    assert rec["primary_sponsor"] == sponsor
    assert rec["funding"][0] == sponsor
    assert rec["inclusion_criteria"]
    assert (rec["exclusion_criteria"] is not None) is has_exclusion
    # Conventions of record.py: never "", lists are lists, JSON-able.
    for key, value in rec.items():
        assert value != "", key
        if isinstance(value, list):
            assert all(item != "" for item in value), key
    orjson.dumps(rec)
    # derivedSection / versionHolder never leak in.
    assert "versionHolder" not in orjson.dumps(rec).decode()


def test_terminated_study_details(v2_dir: Path) -> None:
    rec = record_of(v2_dir, "NCT00184067")
    assert rec["why_stopped"] == "Primary PI left institution"
    assert rec["interventions"] == ["Biological: Montanide ISA 51"]
    assert rec["overall_officials"] == [
        "Jeffrey Weber (Principal Investigator, University of Southern California)"
    ]
    assert rec["locations"] == [
        "USC/Norris Comprehensive Cancer Center, Los Angeles, California, United States"
    ]
    assert rec["study_design"] == (
        "Allocation: Randomized. Intervention model: Parallel Assignment. "
        "Primary purpose: Treatment. Masking: None (Open Label)."
    )
    assert rec["enrollment_type"] == "Actual"
    assert rec["secondary_ids"] == ["10M-03-8"]
    assert rec["secondary_sponsors"] == []
    assert rec["responsible_party"] == "Sponsor"
    assert rec["healthy_volunteers"] is False
    assert rec["central_contacts"] == []
    assert rec["ipd_sharing"] is None
    assert rec["acronym"] is None
    assert rec["inclusion_criteria"].startswith("* Patients who have completed protocol 10M-01-1")
    assert "\n\n  1. They have received all injections" in rec["inclusion_criteria"]
    assert rec["exclusion_criteria"].startswith("* Patients who have undergone any other systemic")


def test_sponsors_ids_and_markdown_escapes(v2_dir: Path) -> None:
    rec = record_of(v2_dir, "NCT00763412")
    collaborators = [
        "Washington University School of Medicine",
        "National Institutes of Health (NIH)",
        "Novo Nordisk A/S",
        "National Institute of Diabetes and Digestive and Kidney Diseases (NIDDK)",
    ]
    assert rec["secondary_sponsors"] == collaborators
    assert rec["funding"] == ["Arbelaez, Ana Maria", *collaborators]
    assert rec["responsible_party"] == "Principal Investigator: Ana Maria Arbelaez"
    assert rec["ipd_sharing"].startswith("Undecided: The outcome was inconclusive")
    assert rec["secondary_ids"] == ["05-1109", "P60DK020579"]
    assert rec["interventions"] == ["Drug: placebo", "Drug: repaglinide"]
    assert rec["study_design"].endswith(
        "Masking: Quadruple (Participant, Care Provider, Investigator, Outcomes Assessor)."
    )
    # The live API's markdown escape "\<126" reads as plain "<126".
    assert "fasting blood glucose <126 mg/dl" in rec["inclusion_criteria"]
    assert "\\" not in rec["inclusion_criteria"]
    assert rec["inclusion_criteria"].startswith("* Male or females 12 -24 years old")
    assert rec["exclusion_criteria"].startswith("* Patients receiving growth hormone therapy")


def test_outcome_strings_and_arm_groups(v2_dir: Path) -> None:
    rec = record_of(v2_dir, "NCT00973089")
    assert rec["primary_outcomes"] == [
        "The success of the alternative treatment of the deep carious lesion. "
        "[Time Frame: Half annually for three years]"
    ]
    assert rec["primary_outcomes_detail"] == [
        {
            "measure": "The success of the alternative treatment of the deep carious lesion.",
            "description": None,
            "time_frame": "Half annually for three years",
        }
    ]
    assert rec["arm_groups"] == [
        {"label": "Complete caries removal", "type": "No Intervention",
         "description": "Control group", "interventions": []},
        {"label": "Incomplete caries removal", "type": "Other", "description": "Test group",
         "interventions": ["Other: Incomplete caries removal in primary teeth"]},
    ]
    assert rec["why_stopped"] == (
        "recruiting or enrolling participants has halted prematurely and will not resume"
    )
    assert rec["healthy_volunteers"] is True


def test_other_outcomes_keep_multiline_description(v2_dir: Path) -> None:
    rec = record_of(v2_dir, "NCT03064438")
    assert rec["other_outcomes"][0] == (
        "Number of Participants With Erythema Score Based on Local Tolerability as Assessed "
        "by the Investigator at Week 12 [Time Frame: Week 12]"
    )
    detail = rec["secondary_outcomes_detail"][0]
    assert set(detail) == {"measure", "description", "time_frame"}


def test_locations_without_facility_and_with_status(v2_dir: Path) -> None:
    assert record_of(v2_dir, "NCT02210780")["locations"][0] == "Birmingham, Alabama, United States"
    rec = record_of(v2_dir, "NCT06388018")
    assert rec["locations"] == [
        "Women and Infants Hospital, Providence, Rhode Island, United States [RECRUITING]"
    ]
    # orgStudyIdInfo first, duplicates (NRG-GY032 three times) dropped.
    assert rec["secondary_ids"] == ["NRG-GY032", "NCI-2023-09355", "U10CA180868"]
    assert rec["arm_groups"][0]["label"] == "Cohort A1"
    assert rec["arm_groups"][0]["type"] == "Active Comparator"
    assert len(rec["arm_groups"][0]["interventions"]) == 6
    assert rec["enrollment_type"] == "Estimated"


def test_duplicate_org_and_secondary_id(v2_dir: Path) -> None:
    rec = record_of(v2_dir, "NCT02299791")
    assert rec["secondary_ids"] == ["1R18HL095481-01A1"]
    assert rec["acronym"] == "ALL"
    assert rec["locations"] == [] and rec["countries"] == []
    assert rec["ipd_sharing"] == "No"


def test_observational_design_and_contacts(v2_dir: Path) -> None:
    rec = record_of(v2_dir, "NCT06171568")
    assert rec["study_design"] == "Observational model: Cohort. Time perspective: Prospective."
    assert rec["central_contacts"] == ["Camille Heslot, MD", "Alexis Schnitzler, MD, PhD"]
    assert rec["secondary_sponsors"] == [
        "SBT Human(s) Matter", "Clinical Research Unit Saint Louis Lariboisière"
    ]
    rec = record_of(v2_dir, "NCT03475563")
    assert rec["study_design"] == "Observational model: Case-Only. Time perspective: Prospective."


def test_criteria_headings_variants(v2_dir: Path) -> None:
    # "Key Inclusion Criteria:" / "Key Exclusion Criteria:"
    rec = record_of(v2_dir, "NCT02210780")
    assert rec["inclusion_criteria"].startswith("1. Male or female adults ages 18 to 64 years")
    assert rec["exclusion_criteria"].startswith("1. Prior treatment with dupilumab")
    # "Eligibility criteria:" is no heading: it stays in inclusion; "Exclusion criteria:" is.
    rec = record_of(v2_dir, "NCT03630471")
    assert rec["inclusion_criteria"].startswith("Eligibility criteria:\n\nFor adolescent")
    assert rec["exclusion_criteria"].startswith("For adolescent participants:\n\n* Requiring urgent")
    # A sentence mentioning "inclusion criteria" is no heading.
    rec = record_of(v2_dir, "NCT05147467")
    assert rec["inclusion_criteria"].startswith("Subjects who meet each of the following inclusion")
    assert rec["exclusion_criteria"].startswith("Subjects who meet any of the following exclusion")
    # Inclusion heading only.
    assert record_of(v2_dir, "NCT04267848")["exclusion_criteria"] is None


def test_list_pages(v2_dir: Path) -> None:
    lists = v2_dir / "lists"
    studies, token, total = parse_studies_page(
        (lists / "studies_2025-06-17T11-15-33_pageSize1_nextPageToken.json").read_bytes()
    )
    assert [s["protocolSection"]["identificationModule"]["nctId"] for s in studies] == ["NCT05147467"]
    assert token == "NF0g5JaGmg" and total is None

    studies, token, total = parse_studies_page(
        (lists / "studies_2025-06-17T11-16-37_pageSize2_nextPageToken.json").read_bytes()
    )
    assert [s["protocolSection"]["identificationModule"]["nctId"] for s in studies] == [
        "NCT00184067", "NCT03934567",
    ]
    assert token == "NF0g5JCG" and total is None

    studies, token, total = parse_studies_page(
        (lists / "studies_query_NCT06388018_lastpage.json").read_bytes()
    )
    assert len(studies) == 1 and token is None and total is None
    # The study inside the list normalizes exactly like the extracted single-study file.
    assert normalize_study(studies[0]) == record_of(v2_dir, "NCT06388018")


def test_list_page_shapes() -> None:
    assert parse_studies_page(b'{"studies": []}') == ([], None, None)
    assert parse_studies_page('{"studies": [], "totalCount": 438897, "nextPageToken": "abc"}') == (
        [], "abc", 438897,
    )
    for bad in (b"[]", b"{}", b'{"studies": {}}', b'{"studies": [1]}', b"",
                b"<html><body>Error</body></html>", b'{"studies": [',
                b'{"protocolSection": {"identificationModule": {"nctId": "NCT01234567"}}}'):
        with pytest.raises(ParseError):
            parse_studies_page(bad)


def test_versions_differing_only_in_derived_section_normalize_identically(v2_dir: Path) -> None:
    a = parse_study((v2_dir / "versions" / "NCT02552212__2023-12-12.json").read_bytes())
    b = parse_study((v2_dir / "versions" / "NCT02552212__2024-01-03.json").read_bytes())
    assert a != b  # the raw payloads differ (derivedSection)
    assert normalize_study(a) == normalize_study(b)
    assert normalize_study(a) == record_of(v2_dir, "NCT02552212")


@pytest.fixture(scope="module")
def history_v0(fixtures_dir: Path) -> tuple[int, dict]:
    path = fixtures_dir / "ctgov" / "history" / "NCT04280705" / "history_v0.json"
    return parse_history_version(path.read_bytes())


def test_history_version_unescaped(history_v0: tuple[int, dict]) -> None:
    version, study = history_v0
    assert version == 0
    assert study["protocolSection"]["identificationModule"]["nctId"] == "NCT04280705"
    for text in _strings(study):
        assert "&#x2F;" not in text and "&lt;" not in text and "&gt;" not in text
    assert "evolve/improve" in study["protocolSection"]["descriptionModule"]["briefSummary"]


def test_history_version_normalizes(history_v0: tuple[int, dict]) -> None:
    rec = normalize_study(history_v0[1])
    assert set(rec) == ALL_FIELDS
    assert rec["recruitment_status"] == "not_yet_recruiting"
    assert rec["recruitment_status_raw"] == "NOT_YET_RECRUITING"
    assert rec["date_registration"] == "2020-02-20"
    assert rec["date_first_enrolment"] == "2020-03-12"
    assert rec["target_size"] == 394
    assert rec["phase"] == "Phase 2"
    assert rec["interventions"] == ["Other: Placebo", "Drug: Remdesivir"]
    assert len(rec["primary_outcomes"]) == 1 and len(rec["secondary_outcomes"]) == 24
    assert rec["secondary_outcomes"][-1].startswith(
        "Time to discharge or to a National Early Warning Score (NEWS) of </= 2 and"
    )
    assert rec["locations"] == [
        "University of Nebraska Medical Center - Infectious Diseases, Omaha, Nebraska, United States"
    ]
    assert rec["results_posted"] is False
    for text in _strings(rec):
        assert "&#x2F;" not in text and "&lt;" not in text and "&gt;" not in text
        assert "<p>" not in text and "<li>" not in text and "</" not in text.replace("</=", "")
    inc, exc = rec["inclusion_criteria"], rec["exclusion_criteria"]
    assert inc.startswith("1. Subject (or legally authorized representative) provides written")
    assert "\n4. Male or non-pregnant female adult >/=18 years of age at time of enrollment.\n" in inc
    assert (
        "6. Illness of any duration, and at least one of the following:\n\n"
        "   * Radiographic infiltrates by imaging (chest x-ray, CT scan, etc.), OR\n"
    ) in inc
    assert inc.endswith("(acceptable methods will be determined by the site).")
    assert exc.startswith("1. Alanine transaminase/aspartate transaminase (ALT/AST) > 5 times")
    assert exc.endswith("5. Allergy to any study medication.")


def test_html_to_text_lists() -> None:
    assert html_to_text("<p>A:</p><ul><li>x</li><li>y<ol start='3'><li>z</li></ol></li></ul>") == (
        "A:\n\n* x\n* y\n\n  3. z"
    )
    assert html_to_text("a &amp; b<br/>c") == "a & b\nc"
    assert html_to_text("<ol><li>one<li>two</ol>") == "1. one\n2. two"


def test_history_version_errors() -> None:
    for bad in (b'{"studyVersion": 0}', b'{"study": {}}', b"[]",
                b'{"studyVersion": "x", "study": {"protocolSection": {"identificationModule": {"nctId": "NCT1"}}}}',
                b"<html></html>", b""):
        with pytest.raises(ParseError):
            parse_history_version(bad)


def test_history_index_documented_shape() -> None:
    body = orjson.dumps({
        "protocolSection": {"identificationModule": {"nctId": "NCT04280705"}},
        "history": {"changes": [
            {"version": 2, "date": "2020-03-03", "status": "RECRUITING",
             "moduleLabels": ["Recruitment Status", "Contacts/Locations"]},
            {"version": 0, "date": "2020-02-20", "status": "NOT_YET_RECRUITING",
             "moduleLabels": ["Study Identification", "Study Status"]},
            {"version": 1, "date": "2020-02-24"},
            {"date": "2020-01-01"},
            "garbage",
            {"version": "3", "status": None, "moduleLabels": "not a list"},
        ]},
    })
    assert parse_history_index(body) == [
        {"version": 0, "date": "2020-02-20", "status": "NOT_YET_RECRUITING",
         "modules": ["Study Identification", "Study Status"]},
        {"version": 1, "date": "2020-02-24", "status": None, "modules": []},
        {"version": 2, "date": "2020-03-03", "status": "RECRUITING",
         "modules": ["Recruitment Status", "Contacts/Locations"]},
        {"version": 3, "date": None, "status": None, "modules": []},
    ]
    assert parse_history_index(b'{"history": {}}') == []
    assert parse_history_index(b'{"protocolSection": {}}') == []
    for bad in (b"[]", b"", b"{", b"<!DOCTYPE html>"):
        with pytest.raises(ParseError):
            parse_history_index(bad)


def test_parse_study_accepts_str_and_bytes(v2_dir: Path) -> None:
    raw = (v2_dir / "NCT00973089.json").read_bytes()
    assert parse_study(raw) == parse_study(raw.decode("utf-8"))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"protocolSection": {"identificationModule": {"nctId": "NCT0', id="truncated"),
        pytest.param(b"<!DOCTYPE html><html><body>Access denied</body></html>", id="html"),
        pytest.param(b"   \n<html>", id="html-after-whitespace"),
        pytest.param(b"", id="empty"),
        pytest.param("  \n ", id="blank-str"),
        pytest.param(b"[]", id="list"),
        pytest.param(b"{}", id="empty-object"),
        pytest.param(b'"NCT01234567"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b'{"protocolSection": {"identificationModule": {}}}', id="no-nctId"),
        pytest.param(b'{"protocolSection": {"identificationModule": {"nctId": ""}}}', id="empty-nctId"),
        pytest.param(b'{"protocolSection": []}', id="wrong-type"),
        pytest.param(b'{"studies": []}', id="a-list-page"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested-100000-lists"),
        pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, id="nested-100000-objects"),
        pytest.param(b"\xff\xfe{}", id="invalid-utf8"),
    ],
)
def test_parse_study_errors(body: bytes | str) -> None:
    with pytest.raises(ParseError):
        parse_study(body)


def test_normalize_without_nct_id_raises() -> None:
    for study in ({}, {"protocolSection": {}}, {"protocolSection": {"identificationModule": []}}):
        with pytest.raises(ParseError):
            normalize_study(study)


def test_normalize_minimal_study() -> None:
    rec = normalize_study({"protocolSection": {"identificationModule": {"nctId": "NCT01234567"}}})
    assert set(rec) == ALL_FIELDS
    assert rec["trial_id"] == "NCT01234567"
    assert rec["public_title"] is None and rec["conditions"] == [] and rec["locations"] == []
    assert rec["results_posted"] is None and rec["inclusion_criteria"] is None


def test_normalize_odd_values() -> None:
    study = {
        "protocolSection": {
            "identificationModule": {"nctId": " NCT01234567 ", "briefTitle": "  A\n  title  "
                                     + " " * 2000, "acronym": ""},
            "statusModule": {"overallStatus": "SOME_NEW_STATUS",
                             "startDateStruct": {"date": "September 2024"},
                             "completionDateStruct": "2024-01-01"},
            "designModule": {"enrollmentInfo": {"count": True}, "phases": ["NA"],
                             "studyType": "EXPANDED_ACCESS"},
            "eligibilityModule": {"eligibilityCriteria":
                                  "**INCLUSION CRITERIA:**  \n\n\n\n* a\n\nExclusion Criteria: none\n",
                                  "sex": "FEMALE", "healthyVolunteers": "yes"},
            "conditionsModule": {"conditions": ["", " x ", 3, None]},
            "contactsLocationsModule": {"locations": [{"country": " France "}, {}, "x",
                                                      {"facility": "F", "status": ""}]},
        },
        "hasResults": "false",
    }
    rec = normalize_study(study)
    assert rec["trial_id"] == "NCT01234567"
    assert rec["public_title"] == "A title"
    assert rec["acronym"] is None
    assert rec["recruitment_status"] == "some_new_status"
    assert rec["date_first_enrolment"] == "2024-09"
    assert rec["completion_date"] is None
    assert rec["target_size"] is None and rec["target_size_raw"] is None
    assert rec["phase"] == "N/A"
    assert rec["study_type"] == "Expanded Access"
    assert rec["gender"] == "Female"
    assert rec["healthy_volunteers"] is None
    assert rec["results_posted"] is None
    assert rec["conditions"] == ["x"]
    assert rec["countries"] == ["France"]
    assert rec["locations"] == ["France", "F"]
    assert rec["inclusion_criteria"] == "* a"
    assert rec["exclusion_criteria"] == "none"


# --------------------------------------------------------------------------------------
# Property: normalize_study never raises on arbitrary JSON-ish content
# --------------------------------------------------------------------------------------

_KEY_NAMES = [
    "identificationModule", "statusModule", "sponsorCollaboratorsModule", "descriptionModule",
    "conditionsModule", "designModule", "armsInterventionsModule", "outcomesModule",
    "eligibilityModule", "contactsLocationsModule", "ipdSharingStatementModule",
    "briefTitle", "officialTitle", "acronym", "orgStudyIdInfo", "secondaryIdInfos", "id",
    "overallStatus", "whyStopped", "startDateStruct", "completionDateStruct",
    "primaryCompletionDateStruct", "lastUpdatePostDateStruct", "resultsFirstPostDateStruct",
    "studyFirstSubmitDate", "date", "type", "leadSponsor", "collaborators", "name",
    "responsibleParty", "investigatorFullName", "conditions", "keywords", "studyType", "phases",
    "designInfo", "allocation", "interventionModel", "primaryPurpose", "maskingInfo", "masking",
    "whoMasked", "observationalModel", "timePerspective", "enrollmentInfo", "count",
    "interventions", "armGroups", "label", "description", "interventionNames",
    "primaryOutcomes", "secondaryOutcomes", "otherOutcomes", "measure", "timeFrame",
    "eligibilityCriteria", "sex", "minimumAge", "maximumAge", "healthyVolunteers",
    "locations", "facility", "city", "state", "country", "status", "overallOfficials",
    "affiliation", "role", "centralContacts", "ipdSharing", "briefSummary",
    "detailedDescription", "expandedAccessTypes", "individual",
]
_keys = st.sampled_from(_KEY_NAMES) | st.text(max_size=6)
_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["RECRUITING", "PHASE2", "NA", "Inclusion Criteria:\n* a\nExclusion:\n* b",
                       "2024-09", "", "  ", "\\<", "DRUG"])
)
_json = st.recursive(
    _leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=6),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    protocol=st.dictionaries(_keys, _json, max_size=10),
    ident=st.dictionaries(_keys, _json, max_size=5),
    top=st.dictionaries(st.sampled_from(["hasResults", "derivedSection", "resultsSection"]),
                        _json, max_size=3),
)
def test_normalize_never_raises(protocol: dict, ident: dict, top: dict) -> None:
    protocol = dict(protocol)
    protocol["identificationModule"] = {**ident, "nctId": "NCT01234567"}
    study = {**top, "protocolSection": protocol}
    rec = normalize_study(study)
    assert set(COMMON_FIELDS) <= set(rec)
    assert rec["trial_id"] == "NCT01234567"
    for key, value in rec.items():
        assert value != "", key
    orjson.dumps(rec)


def test_history_deep_markup_and_nesting_do_not_crash() -> None:
    deep_html = "<ul><li>" * 3000 + "x" + "</li></ul>" * 3000
    body = orjson.dumps({"studyVersion": 1, "study": {"protocolSection": {
        "identificationModule": {"nctId": "NCT01234567"},
        "eligibilityModule": {"eligibilityCriteria": deep_html}}}})
    version, study = parse_history_version(body)
    assert version == 1
    assert "x" in study["protocolSection"]["eligibilityModule"]["eligibilityCriteria"]
    # 1000 levels: within orjson's 1024 limit, beyond Python's default recursion limit.
    body = (b'{"studyVersion": 1, "study": {"protocolSection": {"identificationModule": '
            b'{"nctId": "NCT01234567"}}, "x": ' + b"[" * 1000 + b'"&lt;"' + b"]" * 1000 + b"}}")
    try:
        parse_history_version(body)
    except ParseError:
        pass
