"""Parse one WHO ICTRP portal page (``Trial2.aspx?TrialID=...``) into a normalized record.

Pure: no I/O, no clock.  The page is ASP.NET markup whose layout is the same for every
registry (NCT, ChiCTR, ISRCTN, EUCTR, CTRI, IRCT, DRKS, JPRN, ACTRN, ...):

* single fields are elements ``DataList3_ctl01_<Name>`` (spans, and the source URL
  ``a#DataList3_ctl01_HyperLink12``);
* repeating sections are tables ``DataList<N>`` whose items are ``DataList<N>_ctlNN_<Name>``
  (items may sit in rows *or* in cells of one row: countries repeat 8 to a row, contacts 3),
  so items are grouped by their ``ctlNN`` number, never by table row.

The page is parsed once (lexbor) and every element whose id starts with ``DataList`` is
indexed in one CSS query; fields are then read from that index.

What a page can be, judged by content (the portal answers 200 for all of them):

=====================================================  =====================================
trial page (``DataList3_ctl01_TrialIDLabel`` has text)  the record (a dict, see record.py)
... but fewer than 3 of the substantive single fields   :class:`ParseError` (layout change /
    have text, or a main section table (DataList2, 6,    broken render, not "all deleted")
    8, 10, 12) is missing altogether
access denied, bot check, captcha, WAF rejection,       :class:`BlockedPageError`
ASP.NET / IIS error page
not-found page: DataList tables, no item has text       ``None``
item content but no trial ID (ids renamed)              :class:`ParseError`
anything else (JSON, empty, another site's page)        :class:`ParseError`
=====================================================  =====================================

Block markers are only looked for on pages without a trial ID, so a trial whose title
mentions "captcha" or "runtime error" still parses.

How text becomes values (dates, lists, statuses...) is :mod:`pipeline.sources.who.values`,
shared with the export reader.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

from pipeline.errors import BlockedPageError, ParseError
from pipeline.record import Record, empty_record
from pipeline.sources.who.values import (  # noqa: F401 - re-exported: the page's value rules
    _NL,
    STATUS_MAP,
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

__all__ = [
    "parse_trial_page",
    "map_recruitment_status",
    "STATUS_MAP",
    "parse_date",
    "parse_target_size",
    "parse_yes_no",
    "add_time_frame",
    "split_list",
    "unique",
    "unique_dicts",
    "clean_line",
    "clean_multiline",
    "strip_criteria_lead",
    "http_url",
    "looks_like_email",
]

# --------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------

_ITEM_ID = re.compile(r"(DataList[A-Za-z0-9]*)_ctl(\d+)_([A-Za-z0-9_]+)")
_TABLE_ID = re.compile(r"DataList[A-Za-z0-9]*")

#: Element tags unwrapped as formatting; ``_BLOCK_TAGS`` also end a line.
_INLINE_TAGS = frozenset(
    "b i u s em strong font span a small big sub sup abbr cite code q mark tt nobr wbr".split()
)
_BLOCK_TAGS = frozenset("p div li ul ol dl dt dd tr td th table tbody thead h1 h2 h3 h4 h5 h6 blockquote pre".split())

#: The single fields whose text makes a page "substantive".
_SUBSTANTIVE_MAIN = (
    "Public_titleLabel",
    "Scientific_titleLabel",
    "Date_registrationLabel",
    "Primary_sponsorLabel",
    "Recruitment_statusLabel",
    "Date_enrollementLabel",
    "Target_sizeLabel",
    "Study_typeLabel",
)
_MIN_SUBSTANTIVE = 3
#: Repeating sections every Trial2.aspx page renders (as an empty table when empty): if one
#: is missing the layout changed, and reading on would report its content as deleted.
_REQUIRED_SECTIONS = ("DataList2", "DataList6", "DataList8", "DataList10", "DataList12")

# Judged only on pages with no trial ID.  Phrases: on the text a person would see.
_BLOCK_PHRASES = (
    "request rejected",
    "the requested url was rejected",
    "access denied",
    "access to this page has been denied",
    "you don't have permission to access",
    "you do not have permission to access",
    "403 forbidden",
    "captcha",
    "are you a robot",
    "are you human",
    "verify you are human",
    "verify that you are human",
    "checking your browser",
    "checking if the site connection is secure",
    "attention required",
    "cloudflare",
    "incapsula",
    "imperva",
    "ddos protection",
    "unusual traffic",
    "too many requests",
    "rate limit exceeded",
    "server error in '/' application",
    "server error in",
    "runtime error",
    "service unavailable",
    "the service is unavailable",
    "internal server error",
    "bad gateway",
    "gateway time-out",
    "gateway timeout",
    "http error 500",
    "http error 502",
    "http error 503",
    "http error 504",
    "the resource cannot be found",
    "web page blocked",
    "site is under maintenance",
    "temporarily unavailable",
)
# ... and tokens in the markup (scripts, attributes) of challenge pages.
_BLOCK_MARKUP = (
    "cf-challenge",
    "cf_chl_",
    "/cdn-cgi/challenge-platform",
    "challenge-form",
    "g-recaptcha",
    "recaptcha/api",
    "hcaptcha",
    "h-captcha",
    "_incapsula_resource",
    "px-captcha",
    "captcha-delivery",
)


def _raw_text(node: LexborNode) -> str:
    """The text of ``node`` with line breaks as ``_NL``; non-formatting markup kept as text.

    A node with nothing but text in it (most fields) is read in one call; any other is
    walked by :func:`_walk_text`.
    """
    if next(node.iter(), None) is None:  # no element or comment inside (iter() yields both)
        return node.text(deep=False)
    return _walk_text(node)


def _walk_text(node: LexborNode) -> str:
    """:func:`_raw_text` of any node, its children walked one by one.

    Iterative (an explicit stack), so absurdly deep nesting cannot exhaust the recursion limit.
    """
    parts: list[str] = []
    stack = [(node.iter(include_text=True), "")]
    while stack:
        children, closing = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            if closing:
                parts.append(closing)
            continue
        tag = child.tag
        if tag == "-text":
            parts.append(child.text(deep=False))
        elif tag == "br":
            parts.append(_NL)
        elif tag in _INLINE_TAGS:
            stack.append((child.iter(include_text=True), ""))
        elif tag in _BLOCK_TAGS:
            parts.append(_NL)
            stack.append((child.iter(include_text=True), _NL))
        elif tag == "-comment":
            continue
        else:  # script, style, img, iframe, unknown: the registry's characters, verbatim
            parts.append(child.html or "")
    return "".join(parts)


class _Page:
    """Index of every ``DataList*`` element of one parsed page."""

    __slots__ = ("items", "tables")

    def __init__(self, tree: LexborHTMLParser):
        self.items: dict[str, dict[int, dict[str, LexborNode]]] = {}
        self.tables: set[str] = set()
        for node in tree.css('[id^="DataList"]'):
            ident = node.id or ""
            m = _ITEM_ID.fullmatch(ident)
            if m:
                rows = self.items.setdefault(m[1], {})
                rows.setdefault(int(m[2]), {}).setdefault(m[3], node)
            elif _TABLE_ID.fullmatch(ident):
                self.tables.add(ident)

    def rows(self, datalist: str) -> list[dict[str, LexborNode]]:
        rows = self.items.get(datalist)
        if not rows:
            return []
        return [rows[k] for k in sorted(rows)]

    def main(self) -> dict[str, LexborNode]:
        rows = self.rows("DataList3")
        return rows[0] if rows else {}

    def has_text(self) -> bool:
        for rows in self.items.values():
            for fields in rows.values():
                for node in fields.values():
                    if clean_line(_raw_text(node)) or _href(node):
                        return True
        return False


def _href(node: LexborNode | None) -> str | None:
    if node is None:
        return None
    return clean_line(node.attributes.get("href"))


def _line(fields: dict[str, LexborNode], name: str) -> str | None:
    node = fields.get(name)
    return None if node is None else clean_line(_raw_text(node))


def _long(fields: dict[str, LexborNode], name: str) -> str | None:
    node = fields.get(name)
    return None if node is None else clean_multiline(_raw_text(node))


def _blocked_reason(tree: LexborHTMLParser, html: str) -> str | None:
    lowered_markup = html.lower()
    for token in _BLOCK_MARKUP:
        if token in lowered_markup:
            return token
    tree.strip_tags(["script", "style", "template"])
    root = tree.root
    visible = " ".join((root.text(separator=" ") if root is not None else "").lower().split())
    for phrase in _BLOCK_PHRASES:
        if phrase in visible:
            return phrase
    return None


def _decode(body: bytes | str) -> str:
    if isinstance(body, (bytes, bytearray, memoryview)):
        text = bytes(body).decode("utf-8", errors="replace")
    elif isinstance(body, str):
        text = body
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates
            text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    else:
        raise ParseError(f"page body must be bytes or str, got {type(body).__name__}")
    return text[1:] if text.startswith("\ufeff") else text


def _page_of(requested_id: str) -> str:
    """How a message names the page: "WHO page for X", or "WHO page" when no ID was asked for."""
    return f"WHO page for {requested_id}" if requested_id else "WHO page"


def parse_trial_page(body: bytes | str, requested_id: str) -> Record | None:
    """The normalized record of one ``Trial2.aspx`` page, or None for the not-found page.

    Raises :class:`BlockedPageError` for access-denied / bot-check / error pages and
    :class:`ParseError` for anything that is not a readable trial page (see module doc).
    ``trial_id`` is the ID the page shows (``TrialIDLabel``); compare it with
    ``requested_id`` if the portal may answer for a different record.
    """
    html = _decode(body)
    if not html.strip():
        raise ParseError(f"{_page_of(requested_id)}: empty body")
    try:
        tree = LexborHTMLParser(html)
        page = _Page(tree)
        main = page.main()
        trial_id = _line(main, "TrialIDLabel")
        if trial_id is None:
            reason = _blocked_reason(tree, html)
            if reason is not None:
                raise BlockedPageError(
                    f"WHO portal returned a blocked/error page{' for ' + requested_id if requested_id else ''} ({reason!r})"
                )
            if page.items and page.has_text():
                raise ParseError(
                    f"{_page_of(requested_id)}: trial content but no "
                    "DataList3_ctl01_TrialIDLabel (layout changed?)"
                )
            if page.tables or page.items:
                return None  # the portal's not-found page: empty DataList tables
            raise ParseError(f"{_page_of(requested_id)}: not a Trial2.aspx page (no DataList markup)")
        found = sum(1 for name in _SUBSTANTIVE_MAIN if _line(main, name))
        if found < _MIN_SUBSTANTIVE:
            raise ParseError(
                f"{_page_of(requested_id)} ({trial_id}): only {found} of "
                f"{len(_SUBSTANTIVE_MAIN)} main fields readable (layout changed?)"
            )
        missing = [n for n in _REQUIRED_SECTIONS if n not in page.tables and n not in page.items]
        if missing:
            raise ParseError(
                f"{_page_of(requested_id)} ({trial_id}): section table(s) "
                f"{', '.join(missing)} missing (layout changed?)"
            )
        return _build(page, main, trial_id)
    except (BlockedPageError, ParseError):
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, UnicodeError, RecursionError) as exc:
        raise ParseError(f"{_page_of(requested_id)}: unreadable ({type(exc).__name__}: {exc})") from exc


def _items_text(rows: list[dict[str, LexborNode]], preferred: tuple[str, ...] = ()) -> list[str]:
    """The texts of a repeating section: per item the preferred labels, else every label."""
    texts: list[str] = []
    for fields in rows:
        names = [n for n in preferred if n in fields] or list(fields)
        for name in names:
            t = _line(fields, name)
            if t:
                texts.append(t)
    return texts


def _list_section(rows: list[dict[str, LexborNode]], preferred: tuple[str, ...] = ()) -> list[str]:
    out: list[str] = []
    for text in _items_text(rows, preferred):
        out.extend(split_list(text))
    return out


_TIME_FRAME_NAME = re.compile(r"time_?frame", re.IGNORECASE)


def add_time_frame(entries: list[str], time_frame: str | None) -> list[str]:
    """Append `` [Time Frame: tf]`` to each outcome that does not already carry it."""
    if not time_frame:
        return entries
    out = []
    for entry in entries:
        low = entry.lower()
        if "time frame" in low or time_frame.lower() in low:
            out.append(entry)
        else:
            out.append(f"{entry} [Time Frame: {time_frame}]")
    return out


def _outcomes(rows: list[dict[str, LexborNode]]) -> list[str]:
    out: list[str] = []
    for fields in rows:
        frames = [t for n in fields if _TIME_FRAME_NAME.search(n) for t in [_line(fields, n)] if t]
        names = [t for n in fields if not _TIME_FRAME_NAME.search(n) for t in [_line(fields, n)] if t]
        entries = [e for name in names for e in split_list(name)]
        out.extend(add_time_frame(entries, "; ".join(frames) or None))
    return out


def _build(page: _Page, main: dict[str, LexborNode], trial_id: str) -> Record:
    rec = empty_record(trial_id, "who", _line(main, "DescriptionLabel"))

    last_refreshed = parse_date(_line(main, "Last_updatedLabel"))
    rec["last_refreshed"] = last_refreshed
    rec["last_updated"] = last_refreshed
    rec["date_registration"] = parse_date(_line(main, "Date_registrationLabel"))
    rec["prospective_registration"] = parse_yes_no(_line(main, "Label1"))
    rec["primary_sponsor"] = _line(main, "Primary_sponsorLabel")
    rec["public_title"] = _line(main, "Public_titleLabel")
    rec["acronym"] = _line(main, "AcronymLabel")
    rec["scientific_title"] = _line(main, "Scientific_titleLabel")
    rec["date_first_enrolment"] = parse_date(_line(main, "Date_enrollementLabel"))
    size_raw = _line(main, "Target_sizeLabel")
    rec["target_size_raw"] = size_raw
    rec["target_size"] = parse_target_size(size_raw)
    status_raw = _line(main, "Recruitment_statusLabel")
    rec["recruitment_status_raw"] = status_raw
    rec["recruitment_status"] = map_recruitment_status(status_raw)
    link = main.get("HyperLink12")
    rec["url"] = http_url(_href(link)) or http_url(_line(main, "HyperLink12"))
    rec["study_type"] = _line(main, "Study_typeLabel")
    design = [
        t for t in (_line(main, n) for n in ("Study_designLabel", "AllocationLabel", "AssignementLabel")) if t
    ]
    rec["study_design"] = " ".join(design) or None
    rec["phase"] = _line(main, "PhaseLabel")

    rec["countries"] = unique(_list_section(page.rows("DataList2"), ("Country_Label",)))

    contacts = []
    for fields in page.rows("DataList4"):
        name = " ".join(
            t for t in (_line(fields, n) for n in ("FirstnameLabel", "MiddlenameLabel", "LastnameLabel")) if t
        )
        contact = {
            "type": _line(fields, "Label2000"),
            "name": name or None,
            "affiliation": _line(fields, "AffiliationLabel"),
        }
        if any(contact.values()):
            contacts.append(contact)
    rec["contacts"] = unique_dicts(contacts)

    inclusion: list[str] = []
    exclusion: list[str] = []
    for fields in page.rows("DataList6"):
        inc = strip_criteria_lead(_long(fields, "Inclusion_criteriaLabel"), "inclusion")
        exc = strip_criteria_lead(_long(fields, "Exclusion_criteriaLabel"), "exclusion")
        if inc:
            inclusion.append(inc)
        if exc:
            exclusion.append(exc)
        rec["age_min"] = rec["age_min"] or _line(fields, "Label8")
        rec["age_max"] = rec["age_max"] or _line(fields, "Label11")
        rec["gender"] = rec["gender"] or _line(fields, "Label12")
    rec["inclusion_criteria"] = "\n\n".join(inclusion) or None
    rec["exclusion_criteria"] = "\n\n".join(exclusion) or None

    rec["conditions"] = _list_section(page.rows("DataList8"))
    rec["interventions"] = _list_section(page.rows("DataList10"))
    rec["primary_outcomes"] = _outcomes(page.rows("DataList12"))
    rec["secondary_outcomes"] = _outcomes(page.rows("DataList14"))
    rec["secondary_ids"] = _list_section(page.rows("DataList16"))
    rec["funding"] = _list_section(page.rows("DataList18"))
    rec["secondary_sponsors"] = _list_section(page.rows("DataList20"))

    ethics = []
    for fields in page.rows("DataList5"):
        contact_name = _line(fields, "Label2003")
        entry = {
            "status": _line(fields, "Label2001"),
            "approval_date": parse_date(_line(fields, "Label2002")),
            "contact_name": None if looks_like_email(contact_name) else contact_name,
        }
        if any(entry.values()):
            ethics.append(entry)
    rec["ethics_review"] = ethics

    results = page.rows("DataListResults")
    if results or "DataListResults" in page.tables:
        res = results[0] if results else {}
        summary = _long(res, "Label3")
        posted = parse_date(_line(res, "lblResultsDatePosted"))
        rec["results_summary"] = summary
        rec["results_date_posted"] = posted
        rec["results_url"] = http_url(_href(res.get("HyperLink12"))) or http_url(_line(res, "HyperLink12"))
        rec["results_posted"] = bool(parse_yes_no(_line(res, "lblResultsYesNo")) or summary or posted)
        rec["completion_date"] = parse_date(_line(res, "lblResultDateCompleted"))
    else:
        rec["results_summary"] = None
        rec["results_date_posted"] = None
        rec["results_url"] = None
        rec["results_posted"] = None
    return rec

