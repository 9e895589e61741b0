"""Read WHO ICTRP export files into normalized records (source "who").

Pure: the functions take the file's bytes (or text) and yield records; nothing is read
from disk or the network here.

* :func:`parse_export_xml` reads the portal's "Export results to XML" file
  (``<Trials_downloaded_from_ICTRP><Trial>...</Trial>...``) with
  ``xml.etree.ElementTree.iterparse``, clearing each ``<Trial>`` once read.  A document
  with a DOCTYPE or an ENTITY declaration is refused (:class:`ParseError`) before any
  parsing, so a hostile export cannot expand entities; malformed XML is a ParseError
  too (raised when the iteration reaches it: earlier records have been yielded).
* :func:`parse_export_csv` reads the CSV exports (the weekly COVID-19 files and the
  "full export"), UTF-8 with or without BOM, with ``csv.DictReader``.

Column / element names differ between the formats (``Last Refreshed on`` in the CSV,
``Last_Refreshed_on`` in the XML, ``public_title`` / ``Conditions`` / ``Source_Support``
in the full export, see fixtures/who/csv/ICTRP_export_datafields.txt); they are matched
after lower-casing and turning every non-alphanumeric run into ``_``, against the alias
lists in :data:`FIELD_ALIASES`.

Field semantics are those of :func:`pipeline.sources.who.page.parse_trial_page` (same helpers:
status table, dates, target size, ``;`` lists, ``<br>`` handling, criteria lead removed).
Every record has every key a page record has (all COMMON_FIELDS plus the WHO extras);
what the export does not carry is None / [].  Differences from the page:

* ``date_registration`` is taken from ``Date_registration3`` (``yyyymmdd``, unambiguous)
  when present, else from ``Date_registration``.
* ``prospective_registration`` is ``Retrospective_flag`` read AS IS: despite its name the
  column says whether registration was *prospective* ("Yes" = registered before first
  enrolment), as the page's "Prospective Registration" does.  Checked on the fixtures:
  every ChiCTR row has "Yes" exactly when enrolment is not before registration (15 Apr
  2020 CSV: 295 "Yes" all prospective, 307 "No" all retrospective; 18 Mar 2020 XML:
  257 / 219), and the other registries agree except some NCT rows.
* ``contacts``: the exports join several contacts' first names / last names /
  affiliations with ``;``; they are re-paired by position, and ``type`` is None
  (the full export's ``Public_Contact_*`` / ``Scientific_Contact_*`` give the type).

Fields an export CANNOT carry (always None / [] from these files):

* all formats: nothing marks a contact's type in the COVID-19 CSVs and the search
  XML (``contacts[].type`` None).
* COVID-19 CSVs (Apr 2020) and the 2020 search XML: ``secondary_outcomes``,
  ``secondary_ids``, ``funding``, ``secondary_sponsors``, ``ethics_review``,
  ``results_summary``; ``completion_date`` only via ``results date completed``.
* the 2024 search XML adds secondary outcomes/IDs, funding, secondary sponsors and ethics
  review, but still no ``results_summary``.
* only the full CSV export has ``results_summary``.

Rows without a TrialID are skipped.  Pass an :class:`ExportStats` as ``stats`` to learn
how many (and where); each skip is also logged at WARNING on this module's logger.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import zip_longest

from pipeline.errors import ParseError
from pipeline.sources.who.values import (
    clean_line,
    clean_multiline,
    http_url,
    looks_like_email,
    map_recruitment_status,
    parse_date,
    parse_target_size,
    parse_yes_no,
    split_list,
    strip_criteria_lead,
    unique,
    unique_dicts,
)
from pipeline.record import Record, empty_record

__all__ = [
    "parse_export_xml",
    "parse_export_csv",
    "ExportStats",
    "FIELD_ALIASES",
    "record_from_export_row",
    "detect_export_format",
    "export_fields",
    "iter_export_rows",
]

log = logging.getLogger(__name__)

#: Root element of the portal's XML export.
XML_ROOT = "Trials_downloaded_from_ICTRP"


@dataclass
class ExportStats:
    """Filled while an export is read: records yielded, rows skipped (no TrialID)."""

    records: int = 0
    skipped: int = 0
    #: 1-based position of each skipped ``<Trial>`` / CSV data row.
    skipped_rows: list[int] = field(default_factory=list)


#: record concept -> normalized column / element names, first present non-empty wins.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "trial_id": ("trialid", "trial_id", "main_id"),
    "last_refreshed": ("last_refreshed_on", "last_refreshed"),
    "public_title": ("public_title",),
    "scientific_title": ("scientific_title",),
    "acronym": ("acronym",),
    "primary_sponsor": ("primary_sponsor",),
    "date_registration_compact": ("date_registration3",),
    "date_registration": ("date_registration",),
    "registry": ("source_register", "register"),
    "url": ("web_address", "url"),
    "recruitment_status": ("recruitment_status",),
    "age_min": ("inclusion_agemin", "agemin"),
    "age_max": ("inclusion_agemax", "agemax"),
    "gender": ("inclusion_gender", "gender"),
    "date_first_enrolment": ("date_enrollement", "date_enrolment", "date_enrollment"),
    "target_size": ("target_size",),
    "study_type": ("study_type",),
    "study_design": ("study_design",),
    "phase": ("phase",),
    "countries": ("countries", "country"),
    "inclusion_criteria": ("inclusion_criteria",),
    "exclusion_criteria": ("exclusion_criteria",),
    "conditions": ("condition", "conditions"),
    "interventions": ("intervention", "interventions"),
    "primary_outcomes": ("primary_outcome", "primary_outcomes"),
    "secondary_outcomes": ("secondary_outcome", "secondary_outcomes"),
    "secondary_ids": ("secondary_id", "secondary_ids", "secondaryids"),
    "funding": ("source_support",),
    "secondary_sponsors": ("secondary_sponsor", "secondary_sponsors"),
    "retrospective_flag": ("retrospective_flag",),
    "results_yes_no": ("results_yes_no",),
    "results_url": ("results_url_link",),
    "results_summary": ("results_summary",),
    "results_date_posted": ("results_date_posted",),
    "completion_date": ("results_date_completed",),
    "ethics_status": ("ethics_review_status", "ethics_status"),
    "ethics_approval_date": ("ethics_review_approval_date", "ethics_approval_date"),
    "ethics_contact_name": ("ethics_review_contact_name", "ethics_contact_name"),
}

#: (contact type, column prefix) pairs; "" is the search exports' untyped ``Contact_*``.
_CONTACT_PREFIXES = ((None, "contact_"), ("Public", "public_contact_"), ("Scientific", "scientific_contact_"))

_KEY_RE = re.compile(r"[^0-9a-z]+")


def _key(name: str) -> str:
    return _KEY_RE.sub("_", name.lstrip("\ufeff").lower()).strip("_")


def _get(row: Mapping[str, str], concept: str) -> str | None:
    for name in FIELD_ALIASES[concept]:
        value = row.get(name)
        if value and value.strip():
            return value
    return None


def _line(row: Mapping[str, str], concept: str) -> str | None:
    return clean_line(_get(row, concept))


def _parts(text: str | None) -> list[str | None]:
    """Positional ``;`` split that keeps empty positions (for re-pairing contacts)."""
    if not text:
        return []
    return [clean_line(p) for p in text.split(";")]


def _contacts(row: Mapping[str, str]) -> list[dict[str, str | None]]:
    contacts: list[dict[str, str | None]] = []
    for ctype, prefix in _CONTACT_PREFIXES:
        firsts = _parts(row.get(prefix + "firstname"))
        lasts = _parts(row.get(prefix + "lastname"))
        affs = _parts(row.get(prefix + "affiliation"))
        for first, last, aff in zip_longest(firsts, lasts, affs):
            name = " ".join(t for t in (first, last) if t) or None
            if name or aff:
                contacts.append({"type": ctype, "name": name, "affiliation": aff})
    return unique_dicts(contacts)


def _ethics(row: Mapping[str, str]) -> list[dict[str, str | None]]:
    entries = []
    for status, date, name in zip_longest(
        _parts(_get(row, "ethics_status")),
        _parts(_get(row, "ethics_approval_date")),
        _parts(_get(row, "ethics_contact_name")),
    ):
        entry = {
            "status": status,
            "approval_date": parse_date(date),
            "contact_name": None if looks_like_email(name) else name,
        }
        if any(entry.values()):
            entries.append(entry)
    return entries


def record_from_export_row(row: Mapping[str, str]) -> Record | None:
    """One export row (keys already normalized by ``_key``) as a record; None without ID."""
    trial_id = _line(row, "trial_id")
    if trial_id is None:
        return None
    rec = empty_record(trial_id, "who", _line(row, "registry"))
    last_refreshed = parse_date(_line(row, "last_refreshed"))
    rec["last_refreshed"] = last_refreshed
    rec["last_updated"] = last_refreshed
    rec["public_title"] = _line(row, "public_title")
    rec["scientific_title"] = _line(row, "scientific_title")
    rec["acronym"] = _line(row, "acronym")
    rec["primary_sponsor"] = _line(row, "primary_sponsor")

    compact = parse_date(_line(row, "date_registration_compact"))
    if compact and re.fullmatch(r"\d{4}-\d{2}-\d{2}", compact):
        rec["date_registration"] = compact
    else:
        rec["date_registration"] = parse_date(_line(row, "date_registration"))
    # Misnamed column: "Yes" means prospective (see the module docstring).
    rec["prospective_registration"] = parse_yes_no(_line(row, "retrospective_flag"))

    rec["url"] = http_url(_line(row, "url"))
    status_raw = _line(row, "recruitment_status")
    rec["recruitment_status_raw"] = status_raw
    rec["recruitment_status"] = map_recruitment_status(status_raw)
    rec["age_min"] = _line(row, "age_min")
    rec["age_max"] = _line(row, "age_max")
    rec["gender"] = _line(row, "gender")
    rec["date_first_enrolment"] = parse_date(_line(row, "date_first_enrolment"))
    size_raw = _line(row, "target_size")
    rec["target_size_raw"] = size_raw
    rec["target_size"] = parse_target_size(size_raw)
    rec["study_type"] = _line(row, "study_type")
    rec["study_design"] = _line(row, "study_design")
    rec["phase"] = _line(row, "phase")

    rec["countries"] = unique(split_list(_get(row, "countries")))
    rec["conditions"] = split_list(_get(row, "conditions"))
    rec["interventions"] = split_list(_get(row, "interventions"))
    rec["primary_outcomes"] = split_list(_get(row, "primary_outcomes"))
    rec["secondary_outcomes"] = split_list(_get(row, "secondary_outcomes"))
    rec["secondary_ids"] = split_list(_get(row, "secondary_ids"))
    rec["funding"] = split_list(_get(row, "funding"))
    rec["secondary_sponsors"] = split_list(_get(row, "secondary_sponsors"))

    rec["inclusion_criteria"] = strip_criteria_lead(clean_multiline(_get(row, "inclusion_criteria")), "inclusion")
    rec["exclusion_criteria"] = strip_criteria_lead(clean_multiline(_get(row, "exclusion_criteria")), "exclusion")

    rec["contacts"] = _contacts(row)
    rec["ethics_review"] = _ethics(row)

    summary = clean_multiline(_get(row, "results_summary"))
    posted = parse_date(_line(row, "results_date_posted"))
    rec["results_summary"] = summary
    rec["results_date_posted"] = posted
    rec["results_url"] = http_url(_line(row, "results_url"))
    rec["results_posted"] = bool(parse_yes_no(_line(row, "results_yes_no")) or summary or posted)
    rec["completion_date"] = parse_date(_line(row, "completion_date"))
    return rec


def _skip(stats: ExportStats | None, position: int, what: str) -> None:
    log.warning("ICTRP %s export: row %d has no TrialID, skipped", what, position)
    if stats is not None:
        stats.skipped += 1
        stats.skipped_rows.append(position)


# --------------------------------------------------------------------------------------
# XML
# --------------------------------------------------------------------------------------

_DTD_MARKERS = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)


def _refuse_dtd(body: bytes) -> None:
    """Refuse any DTD / entity declaration, whatever the document's encoding."""
    candidates = [body]
    head = body[:4]
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(head) == 4 and 0 in head):
        for enc in ("utf-16", "utf-32", "utf-16-le", "utf-16-be"):
            try:
                candidates.append(body.decode(enc).encode("utf-8", "replace"))
            except UnicodeDecodeError:
                continue
    if any(_DTD_MARKERS.search(c) for c in candidates):
        raise ParseError("ICTRP XML export: DOCTYPE/ENTITY declarations are not accepted")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_export_xml(body: bytes | str, *, stats: ExportStats | None = None) -> Iterator[Record]:
    """Yield one record per ``<Trial>`` of an ICTRP XML export (streamed).

    Raises :class:`ParseError` (before the first record) for a DTD/ENTITY declaration
    or a root element other than ``<Trials_downloaded_from_ICTRP>``, and (when reached)
    for malformed XML.
    """
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    elif isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    if not isinstance(body, bytes):
        raise ParseError(f"ICTRP XML export must be bytes, got {type(body).__name__}")
    _refuse_dtd(body)
    return _iter_xml(body, stats)


def _iter_xml(body: bytes, stats: ExportStats | None) -> Iterator[Record]:
    for rec, _raw in _walk_xml_trials(body, stats, keep_raw=False):
        yield rec


def _walk_xml_trials(
    body: bytes, stats: ExportStats | None, *, keep_raw: bool
) -> Iterator[tuple[Record, bytes | None]]:
    """Stream ``(record, raw)`` per ``<Trial>``; ``raw`` is a one-trial export file when
    ``keep_raw`` (what the importer stores so the parser can re-read the row later)."""
    position = 0
    depth = 0
    root: ET.Element | None = None
    try:
        for event, elem in ET.iterparse(io.BytesIO(body), events=("start", "end")):
            if event == "start":
                depth += 1
                if root is None:
                    root = elem
                    if _local(elem.tag) != XML_ROOT:
                        raise ParseError(
                            f"not an ICTRP XML export: root element <{_local(elem.tag)[:60]}>"
                        )
                continue
            depth -= 1
            if depth != 1 or _local(elem.tag) != "Trial":
                continue
            position += 1
            row: dict[str, str] = {}
            for child in elem:
                name = _key(_local(child.tag))
                text = "".join(child.itertext())
                previous = row.get(name)
                row[name] = f"{previous};{text}" if previous and previous.strip() else text
            raw = None
            if keep_raw:
                elem.tail = None
                tag = XML_ROOT.encode()
                raw = b"<" + tag + b">" + ET.tostring(elem, encoding="utf-8", xml_declaration=False) + b"</" + tag + b">"
            elem.clear()
            if root is not None:
                root.clear()  # drop the cleared <Trial> shells too
            rec = record_from_export_row(row)
            if rec is None:
                _skip(stats, position, "XML")
                continue
            if stats is not None:
                stats.records += 1
            yield rec, raw
    except ET.ParseError as exc:
        raise ParseError(f"ICTRP XML export: malformed XML ({exc})") from exc
    if root is None:
        raise ParseError("ICTRP XML export: no root element")


# --------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------


def parse_export_csv(data: bytes | str, *, stats: ExportStats | None = None) -> Iterator[Record]:
    """Yield one record per data row of an ICTRP CSV export (UTF-8, BOM optional).

    The header row names the columns.  Raises :class:`ParseError` for a file without a
    ``TrialID`` column, and (when reached) for CSV the reader rejects.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        text = bytes(data).decode("utf-8-sig", errors="replace")
    elif isinstance(data, str):
        text = data.lstrip("\ufeff")
    else:
        raise ParseError(f"ICTRP CSV export must be bytes or str, got {type(data).__name__}")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise ParseError(f"ICTRP CSV export: unreadable header ({exc})") from exc
    if not header:
        raise ParseError("ICTRP CSV export: empty file")
    keys = {h: _key(h) for h in header}
    if not any(k in FIELD_ALIASES["trial_id"] for k in keys.values()):
        raise ParseError(f"ICTRP CSV export: no TrialID column in header {header[:5]!r}")
    return _iter_csv(reader, keys, stats)


def _iter_csv(reader: csv.DictReader, keys: dict[str, str], stats: ExportStats | None) -> Iterator[Record]:
    position = 0
    try:
        for raw in reader:
            position += 1
            row = {keys[k]: v for k, v in raw.items() if k is not None and v is not None}
            rec = record_from_export_row(row)
            if rec is None:
                _skip(stats, position, "CSV")
                continue
            if stats is not None:
                stats.records += 1
            yield rec
    except csv.Error as exc:
        raise ParseError(f"ICTRP CSV export: unreadable row after data row {position} ({exc})") from exc


# --------------------------------------------------------------------------------------
# Import support: the format of a file, each record with its raw row, the fields a file
# carries
# --------------------------------------------------------------------------------------

#: Export concepts whose record field has another name (or more than one field).
_CONCEPT_FIELDS: dict[str, tuple[str, ...]] = {
    "trial_id": (),
    "last_refreshed": ("last_refreshed", "last_updated"),
    "date_registration_compact": ("date_registration",),
    "recruitment_status": ("recruitment_status", "recruitment_status_raw"),
    "target_size": ("target_size", "target_size_raw"),
    "retrospective_flag": ("prospective_registration",),
    "results_yes_no": ("results_posted",),
    "results_summary": ("results_summary", "results_posted"),
    "results_date_posted": ("results_date_posted", "results_posted"),
    "ethics_status": ("ethics_review",),
    "ethics_approval_date": ("ethics_review",),
    "ethics_contact_name": ("ethics_review",),
}
_CONTACT_KEYS = frozenset(
    prefix + part for _type, prefix in _CONTACT_PREFIXES for part in ("firstname", "lastname", "affiliation")
)


def detect_export_format(data: bytes | str) -> str:
    """``"xml"`` or ``"csv"``, judged by the content (never by the file name)."""
    head = data[:4096]
    if isinstance(head, bytes):
        if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
            head = head.decode("utf-16", "replace")
        else:
            head = head.decode("utf-8", "replace")
    head = head.lstrip("\ufeff \t\r\n")
    return "xml" if head.startswith("<") else "csv"


def export_fields(keys: Iterable[str]) -> frozenset[str]:
    """The record fields an export with these (normalized) column names can carry.

    Fields outside this set are absent from the file, not empty in the trial: an
    import keeps what the store knew of them rather than recording their removal.
    """
    keys = set(keys)
    out: set[str] = {"trial_id", "source"}
    for concept, aliases in FIELD_ALIASES.items():
        if keys.intersection(aliases):
            out.update(_CONCEPT_FIELDS.get(concept, (concept,)))
    if keys & _CONTACT_KEYS:
        out.add("contacts")
    return frozenset(out)


def iter_export_rows(data: bytes | str, fmt: str | None = None, *, stats: ExportStats | None = None
                     ) -> Iterator[tuple[Record, bytes, frozenset[str]]]:
    """Yield ``(record, raw, fields)`` per trial of an export (streamed).

    ``raw`` is the trial's row as a one-trial export file of the same format (header and
    row for CSV, ``<Trials_downloaded_from_ICTRP><Trial>...`` for XML), so it can be
    re-read by :func:`parse_export_csv` / :func:`parse_export_xml`; ``fields`` is what
    :func:`export_fields` says the row can carry.
    """
    fmt = fmt or detect_export_format(data)
    if fmt == "xml":
        return _iter_xml_rows(data, stats)
    return _iter_csv_rows(data, stats)


def _iter_csv_rows(data: bytes | str, stats: ExportStats | None) -> Iterator[tuple[Record, bytes, frozenset[str]]]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        text = bytes(data).decode("utf-8-sig", errors="replace")
    else:
        text = data.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ParseError("ICTRP CSV export: empty file") from None
    except csv.Error as exc:
        raise ParseError(f"ICTRP CSV export: unreadable header ({exc})") from exc
    keys = [_key(h) for h in header]
    if not any(k in FIELD_ALIASES["trial_id"] for k in keys):
        raise ParseError(f"ICTRP CSV export: no TrialID column in header {header[:5]!r}")
    fields = export_fields(keys)
    head_line = io.StringIO()
    csv.writer(head_line, lineterminator="\r\n").writerow(header)
    head_bytes = head_line.getvalue().encode("utf-8")
    position = 0
    try:
        for values in reader:
            position += 1
            if not values:
                continue
            row = {k: v for k, v in zip(keys, values)}
            rec = record_from_export_row(row)
            if rec is None:
                _skip(stats, position, "CSV")
                continue
            if stats is not None:
                stats.records += 1
            line = io.StringIO()
            csv.writer(line, lineterminator="\r\n").writerow(values)
            yield rec, head_bytes + line.getvalue().encode("utf-8"), fields
    except csv.Error as exc:
        raise ParseError(f"ICTRP CSV export: unreadable row after data row {position} ({exc})") from exc


def _iter_xml_rows(data: bytes | str, stats: ExportStats | None) -> Iterator[tuple[Record, bytes, frozenset[str]]]:
    body = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    _refuse_dtd(body)
    # The XML leaves out a trial's empty elements, so what the file can carry is the
    # union of the element names of all its trials (a first, cheap pass).
    fields = export_fields(_xml_element_names(body))
    for rec, raw in _walk_xml_trials(body, stats, keep_raw=True):
        yield rec, raw, fields


def _xml_element_names(body: bytes) -> set[str]:
    names: set[str] = set()
    depth = 0
    try:
        for event, elem in ET.iterparse(io.BytesIO(body), events=("start", "end")):
            if event == "start":
                depth += 1
                if depth == 3:
                    names.add(_key(_local(elem.tag)))
            else:
                depth -= 1
                if depth == 1:
                    elem.clear()
    except ET.ParseError:
        pass  # reported by the main pass, where it is reached
    return names
