"""pipeline.sources.who.export: WHO ICTRP XML and CSV exports, on the real recorded files."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import pytest

from pipeline.errors import ParseError
from pipeline.sources.who.export import ExportStats, parse_export_csv, parse_export_xml
from pipeline.sources.who.page import parse_date, parse_trial_page
from pipeline.record import COMMON_FIELDS, STATUS_VOCABULARY, WHO_EXTRA_FIELDS

XML_2020 = "ICTRP-Results_18Mar2020.xml"
XML_2024 = "ICTRP-Results_export_2024-06-09_95trials.xml"
CSV_7APR = "COVID19-927-trials_7Apr2020.csv"
CSV_15APR = "COVID19-1135-trials_15Apr2020.csv"

RECORD_KEYS = set(COMMON_FIELDS) | set(WHO_EXTRA_FIELDS)


def _read(fixtures_dir: Path, kind: str, name: str) -> bytes:
    return (fixtures_dir / "who" / kind / name).read_bytes()


@pytest.fixture(scope="module")
def xml_2020(fixtures_dir: Path) -> list[dict]:
    return list(parse_export_xml(_read(fixtures_dir, "xml", XML_2020)))


@pytest.fixture(scope="module")
def xml_2024(fixtures_dir: Path) -> list[dict]:
    return list(parse_export_xml(_read(fixtures_dir, "xml", XML_2024)))


@pytest.fixture(scope="module")
def csv_7apr(fixtures_dir: Path) -> list[dict]:
    return list(parse_export_csv(_read(fixtures_dir, "csv", CSV_7APR)))


@pytest.fixture(scope="module")
def csv_15apr(fixtures_dir: Path) -> list[dict]:
    return list(parse_export_csv(_read(fixtures_dir, "csv", CSV_15APR)))


def _by_id(records: list[dict]) -> dict[str, dict]:
    return {r["trial_id"]: r for r in records}


# --------------------------------------------------------------------------------------
# Counts and shape
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [("xml", XML_2020, 578), ("xml", XML_2024, 95), ("csv", CSV_7APR, 927), ("csv", CSV_15APR, 1135)],
)
def test_record_counts(fixtures_dir: Path, kind: str, name: str, expected: int) -> None:
    stats = ExportStats()
    parse = parse_export_xml if kind == "xml" else parse_export_csv
    records = list(parse(_read(fixtures_dir, kind, name), stats=stats))
    assert len(records) == expected
    assert len({r["trial_id"] for r in records}) == expected
    assert stats.records == expected
    assert stats.skipped == 0


def test_every_record_has_the_page_record_shape(xml_2020, xml_2024, csv_7apr, csv_15apr) -> None:
    for records in (xml_2020, xml_2024, csv_7apr, csv_15apr):
        for rec in records:
            assert set(rec) == RECORD_KEYS
            assert rec["source"] == "who"
            assert rec["recruitment_status"] is None or rec["recruitment_status"] in STATUS_VOCABULARY
            for key, value in rec.items():
                assert value != "", (rec["trial_id"], key)
                if isinstance(value, list):
                    assert "" not in value


def test_same_shape_as_a_page_record(fixtures_dir: Path, xml_2024) -> None:
    page = parse_trial_page(_read(fixtures_dir, "html", "ChiCTR2100045397.html"), "ChiCTR2100045397")
    assert set(page) == set(xml_2024[0])
    for key in RECORD_KEYS:
        assert type(page[key]) is type(xml_2024[0][key]) or None in (page[key], xml_2024[0][key]), key


# --------------------------------------------------------------------------------------
# Values read from the files
# --------------------------------------------------------------------------------------


def test_xml_2020_chictr_record(xml_2020) -> None:
    rec = _by_id(xml_2020)["ChiCTR2000029953"]
    assert rec["registry"] == "ChiCTR"
    assert rec["last_refreshed"] == "2020-02-17"
    assert rec["last_updated"] == "2020-02-17"
    assert rec["public_title"] == (
        "Construction and Analysis of Prognostic Predictive Model of Novel Coronavirus Pneumonia (COVID-19)"
    )
    assert rec["scientific_title"] == rec["public_title"]  # padding to 2,000 chars stripped
    assert rec["recruitment_status"] == "not_recruiting"
    assert rec["recruitment_status_raw"] == "Not Recruiting"
    assert rec["date_registration"] == "2020-02-17"
    assert rec["date_first_enrolment"] == "2020-02-01"
    assert rec["prospective_registration"] is False  # enrolled before registration
    assert rec["target_size"] == 400
    assert rec["target_size_raw"] == "survival group:200;died:200;"
    assert rec["countries"] == ["China"]
    assert rec["conditions"] == ["2019-nCoV Pneumonia"]
    assert rec["interventions"] == ["survival group:none", "died:none"]
    assert rec["primary_outcomes"] == [
        "duration of in hospital",
        "in hospital mortality",
        "the 28s day' mortality after admission",
        "duration of ICU stay",
    ]
    assert rec["study_type"] == "Observational study"
    assert rec["study_design"] == "Factorial"
    assert rec["phase"] == "N/A"
    assert rec["gender"] == "Both"
    assert rec["age_min"] is None and rec["age_max"] is None
    assert rec["url"] == "http://www.chictr.org.cn/showproj.aspx?proj=49217"
    assert rec["exclusion_criteria"].startswith("Patients diagnosed with pneumonia of age <15 years")
    assert rec["results_posted"] is False
    assert rec["contacts"] == [
        {"type": None, "name": "Yan Zhao", "affiliation": "Emergency Department of Zhongnan Hospital of Wuhan University"}
    ]
    # not in this export format
    assert rec["secondary_outcomes"] == [] and rec["ethics_review"] == [] and rec["results_summary"] is None


def test_xml_2024_nct_record(xml_2024) -> None:
    rec = _by_id(xml_2024)["NCT06360289"]
    assert rec["registry"] == "ClinicalTrials.gov"
    assert rec["last_refreshed"] == "2024-05-20"
    assert rec["date_registration"] == "2024-04-08"  # 08/04/2024, day first
    assert rec["date_first_enrolment"] == "2024-04-25"  # April 25, 2024
    assert rec["target_size"] == 500
    assert rec["recruitment_status"] == "recruiting"
    assert rec["age_min"] == "N/A"
    assert rec["gender"] == "All"
    assert rec["countries"] == ["France"]
    assert rec["conditions"] == ["Hereditary Amyloidosis, Transthyretin-Related", "Asymptomatic Carrier State"]
    assert rec["interventions"] == ["Other: Standard of Care"]
    assert len(rec["primary_outcomes"]) == 2
    assert len(rec["secondary_outcomes"]) == 5
    assert rec["secondary_ids"] == ["ALN-TTR-NT-003"]
    assert rec["funding"] == ["Please refer to primary and secondary sponsors"]
    assert rec["contacts"] == [
        {"type": None, "name": "Alnylam Clinical Trial Information Line", "affiliation": None}
    ]
    # the CT.gov eligibility block: "Inclusion Criteria:" lead stripped, <br> -> newlines
    assert rec["inclusion_criteria"].startswith(
        "- Carrier of a documented pathogenic TTR variant confirmed with genotyping with predicted\n"
    )
    assert "\n\nExclusion Criteria:\n\n- A known condition" in rec["inclusion_criteria"]
    assert "<br>" not in rec["inclusion_criteria"] and "\r" not in rec["inclusion_criteria"]


def test_xml_2024_ethics_results_and_placeholders(xml_2024) -> None:
    by_id = _by_id(xml_2024)
    assert by_id["NL-OMON55279"]["ethics_review"] == [
        {"status": "Approved", "approval_date": "2021-03-01", "contact_name": None},
        {"status": "Approved", "approval_date": "2021-05-06", "contact_name": None},
    ]
    # 01/01/1900 is WHO's "no date"
    assert by_id["EUCTR2014-003865-11-NL"]["ethics_review"] == [
        {"status": "Approved", "approval_date": None, "contact_name": None}
    ]
    nct = by_id["NCT03862807"]
    assert nct["results_posted"] is True
    assert nct["results_url"] == "https://clinicaltrials.gov/ct2/show/results/NCT03862807"
    assert nct["results_date_posted"] == "2021-12-21"
    # a contact repeated five times in the export is one contact
    assert by_id["NCT01821118"]["contacts"] == [
        {"type": None, "name": "Pfizer CT.gov Call Center", "affiliation": "Pfizer"}
    ]
    statuses = {r["recruitment_status_raw"]: r["recruitment_status"] for r in xml_2024}
    assert statuses == {
        "Not recruiting": "not_recruiting",
        "Not Recruiting": "not_recruiting",
        "Recruiting": "recruiting",
        "Authorised": "unknown",
        "Not Available": None,
        None: None,
    }
    # EU CTR "<br>Female: yes<br>Male: yes<br>"
    assert by_id["CTIS2023-507385-11-00"]["gender"] == "Female: yes Male: yes"


def test_no_contact_email_or_phone_in_export_records(xml_2020) -> None:
    rec = _by_id(xml_2020)["ChiCTR2000029953"]
    flat = repr(rec)
    assert "@" not in flat and "+86" not in flat


def test_csv_values(csv_7apr, csv_15apr) -> None:
    old, new = _by_id(csv_7apr), _by_id(csv_15apr)
    assert old["NCT04292730"]["target_size"] == 600
    assert old["NCT04292730"]["target_size_raw"] == "600"
    assert new["NCT04292730"]["target_size"] == 1600
    assert old["NCT04331834"]["recruitment_status_raw"] == "Not recruiting"
    assert old["NCT04331834"]["recruitment_status"] == "not_recruiting"
    assert new["NCT04331834"]["recruitment_status_raw"] == "Recruiting"
    assert new["NCT04331834"]["recruitment_status"] == "recruiting"


def test_csv_diff_between_weeks(csv_7apr, csv_15apr) -> None:
    old, new = _by_id(csv_7apr), _by_id(csv_15apr)
    common = old.keys() & new.keys()
    assert len(common) == 924
    changed = sorted(k for k in common if old[k]["recruitment_status"] != new[k]["recruitment_status"])
    assert len(changed) == 28
    assert {(old[k]["recruitment_status"], new[k]["recruitment_status"]) for k in changed} == {
        ("not_recruiting", "recruiting")
    }
    raw_changed = [k for k in common if old[k]["recruitment_status_raw"] != new[k]["recruitment_status_raw"]]
    assert sorted(raw_changed) == changed
    assert sum(1 for k in common if old[k]["last_refreshed"] != new[k]["last_refreshed"]) == 185


def test_csv_day_first_dates_agree_with_compact_column(fixtures_dir: Path) -> None:
    """``Date registration`` (27/01/2020 or 2020-01-27) read day-first equals ``Date registration3``."""
    for name in (CSV_7APR, CSV_15APR):
        text = _read(fixtures_dir, "csv", name).decode("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        assert any("/" in r["Date registration"] for r in rows)
        for row in rows:
            compact = row["Date registration3"]
            assert parse_date(row["Date registration"]) == f"{compact[:4]}-{compact[4:6]}-{compact[6:]}"


def test_enrolment_month_precision(csv_15apr) -> None:
    months = [r for r in csv_15apr if r["date_first_enrolment"] and len(r["date_first_enrolment"]) == 7]
    assert months  # "April 2020" -> "2020-04"
    assert all(r["date_first_enrolment"][4] == "-" for r in months)
    assert _by_id(csv_15apr)["ChiCTR2000029953"]["date_first_enrolment"] == "2020-02-01"


def test_truncated_group_target_size_is_none(csv_7apr) -> None:
    cut = [r for r in csv_7apr if r["target_size_raw"] and r["target_size"] is None]
    assert len(cut) == 1
    assert cut[0]["target_size_raw"].endswith(";Hospital su")


def test_csv_with_or_without_bom_bytes_or_str(fixtures_dir: Path, csv_7apr) -> None:
    # NB: SOURCES.md says these files carry a BOM; the recorded bytes do not (they start
    # "TrialID,").  A BOM, as WHO's own downloads have, must not change anything.
    raw = _read(fixtures_dir, "csv", CSV_7APR)
    assert raw.startswith(b"TrialID,")
    for variant in (b"\xef\xbb\xbf" + raw, raw.decode("utf-8"), "\ufeff" + raw.decode("utf-8")):
        records = list(parse_export_csv(variant))
        assert records == csv_7apr
    assert csv_7apr[0]["trial_id"] == "NCT04246242"


# --------------------------------------------------------------------------------------
# Hostile and broken input
# --------------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Trials_downloaded_from_ICTRP><Trial><TrialID>NCT04252118</TrialID><Public_title>&lol3;</Public_title></Trial></Trials_downloaded_from_ICTRP>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE t [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Trials_downloaded_from_ICTRP><Trial><TrialID>&xxe;</TrialID></Trial></Trials_downloaded_from_ICTRP>"""


@pytest.mark.parametrize(
    "body",
    [
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        BILLION_LAUGHS.decode().replace('version="1.0"', 'version="1.0" encoding="utf-16"').encode("utf-16"),
        b'<?xml version="1.0"?><!DOCTYPE Trials_downloaded_from_ICTRP SYSTEM "http://example.org/x.dtd">'
        b"<Trials_downloaded_from_ICTRP/>",
    ],
)
def test_xml_with_dtd_is_refused(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_export_xml(body)  # refused before iteration starts


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml at all",
        b'{"Trials": []}',
        b"<Trials_downloaded_from_ICTRP><Trial><TrialID>NCT1</TrialID>",  # truncated
        b"<html><body>Access Denied</body></html>",  # wrong root
    ],
)
def test_bad_xml_is_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError):
        list(parse_export_xml(body))


def test_xml_rows_without_trial_id_are_skipped_and_counted(caplog) -> None:
    body = (
        b"<?xml version='1.0' encoding='UTF-8' ?><Trials_downloaded_from_ICTRP>"
        b"<Trial><TrialID>NCT04252118</TrialID><Public_title>A</Public_title></Trial>"
        b"<Trial><TrialID>  \n  </TrialID><Public_title>B</Public_title></Trial>"
        b"<Trial><Public_title>C</Public_title></Trial>"
        b"<Trial><TrialID>ISRCTN12345678</TrialID><Recruitment_Status>Completed</Recruitment_Status></Trial>"
        b"</Trials_downloaded_from_ICTRP>"
    )
    stats = ExportStats()
    with caplog.at_level(logging.WARNING, logger="pipeline.sources.who.export"):
        records = list(parse_export_xml(body, stats=stats))
    assert [r["trial_id"] for r in records] == ["NCT04252118", "ISRCTN12345678"]
    assert records[1]["recruitment_status"] == "completed"
    assert stats == ExportStats(records=2, skipped=2, skipped_rows=[2, 3])
    assert len([r for r in caplog.records if "no TrialID" in r.getMessage()]) == 2


def test_csv_rows_without_trial_id_are_skipped_and_counted() -> None:
    text = (
        "\ufeffTrialID,Public title,Recruitment Status,Target size\r\n"
        "NCT04252118,A,Recruiting,20\r\n"
        ",B,Recruiting,30\r\n"
        'ChiCTR2000029953,"multi\r\nline",Not Recruiting,"a:1;b:2;"\r\n'
    )
    stats = ExportStats()
    records = list(parse_export_csv(text.encode("utf-8"), stats=stats))
    assert [r["trial_id"] for r in records] == ["NCT04252118", "ChiCTR2000029953"]
    assert records[1]["public_title"] == "multi line"
    assert records[1]["target_size"] == 3
    assert stats == ExportStats(records=2, skipped=1, skipped_rows=[2])


@pytest.mark.parametrize("body", [b"", b"Public title,Phase\r\nA,1\r\n", b'{"a": 1}'])
def test_csv_without_trial_id_column_is_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError):
        list(parse_export_csv(body))
