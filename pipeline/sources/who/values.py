"""WHO value rules: how the portal's text becomes record values (pure).

Shared by the page parser (:mod:`pipeline.sources.who.page`) and the export reader
(:mod:`pipeline.sources.who.export`), so a trial reads the same from either.

Normalization choices:

* Single-line fields: ``<br>`` (real tags, or literal ``<br>`` text as WHO stores it) become
  a space, whitespace runs (including raw newlines and ``&nbsp;``) collapse to one space.
* Long text (inclusion/exclusion criteria, results summary): ``<br>`` becomes a newline,
  raw newlines are whitespace (as a browser renders them), at most one blank line in a row.
* Criteria: the leading label ``Inclusion criteria:`` / ``Exclusion criteria:`` that
  WHO prepends is **always removed** (page and exports alike); a CT.gov eligibility block
  arrives whole in ``inclusion_criteria`` and keeps its inner ``Exclusion Criteria:``
  heading (it is not split).
* Text is text: markup the registry put in a field that is not formatting (``<script>``,
  ``<img>``, unknown tags) is kept verbatim as characters, never executed or dropped;
  formatting tags (``<b>``, ``<i>``, ``<font>``, ...) are unwrapped.
* Lists split on ``;`` (not inside ``[...]`` so ``[Time Frame: a; b]`` stays whole),
  entries stripped, empties dropped; countries are de-duplicated (order kept).
* Dates become ISO 8601 at the precision given (``4 October 2022`` -> ``2022-10-04``,
  ``27/01/2020`` -> ``2020-01-27`` (the portal is day-first), ``January 27, 2020``,
  ``September 2024`` -> ``2024-09``); text that is not a date is kept as given.
* ``url`` / ``results_url`` keep only ``http(s)://`` addresses (anything else is None) so a
  hostile page cannot plant a ``javascript:`` link in a report.
* ``01/01/1900`` is WHO's "no date" placeholder (seen on ethics approvals): None.
* Contacts keep ``type``, ``name``, ``affiliation`` only (exact repeats dropped); ethics review keeps ``status``,
  ``approval_date``, ``contact_name`` (an e-mail address given as a name is dropped):
  addresses, phones and e-mails are personal data and change noise.
* ``results_posted``: True when the portal says "Yes" or shows a results summary or a
  results posting date; False otherwise (a results *link* alone is not results: DRKS gives
  one for every trial); None only when the results section is missing from the page.
* ``completion_date`` is the results section's "Date of completion" (WHO TRDS item 22).
* ``last_updated`` = ``last_refreshed`` (the portal gives nothing finer).

Recruitment status table (:data:`STATUS_MAP`, matched case-insensitively after turning
punctuation into spaces, so CT.gov codes like ``ACTIVE_NOT_RECRUITING`` match too):

=======================================================  ==========================
Recruiting, Open, Open to recruitment, Ongoing,            recruiting
Ongoing recruiting, Authorised recruiting
Not recruiting, No longer recruiting, Closed               not_recruiting
Not yet recruiting, Pending, Authorised not started,       not_yet_recruiting
Ongoing not yet recruiting
Active, not recruiting, Closed: follow-up continuing,      active_not_recruiting
Ongoing recruitment ended, Recruitment completed/complete
Completed, Complete, Closed: follow-up complete            completed
Terminated, Stopped early, Prematurely ended               terminated
Withdrawn                                                  withdrawn
Suspended, Temporarily halted, Temporarily closed          suspended
Enrolling by invitation                                    enrolling_by_invitation
Unknown, Unknown status                                    unknown
Authorised / Authorized (EU CTR: a regulatory state that   unknown
WHO gives *every* EUCTR record; says nothing of recruiting)
Available / No longer available / Temporarily not          the expanded-access codes
available / Approved for marketing / Withheld
Not available (ICTRP's placeholder), anything else         None
=======================================================  ==========================

The wording is always kept in ``recruitment_status_raw``.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import re
from collections.abc import Iterable
from typing import Any


#: Stands for a line break while whitespace is collapsed (a private-use character).
_NL = "\ue000"
#: ``<br>`` written as text: WHO stores line breaks as literal ``<br>`` in its data.
_BR_TEXT = re.compile(r"<\s*/?\s*br\s*/?\s*>", re.IGNORECASE)


def clean_line(text: str | None) -> str | None:
    """One line: line breaks to spaces, whitespace runs collapsed, edges stripped; "" -> None."""
    if not text:
        return None
    if "<" in text:
        text = _BR_TEXT.sub(" ", text)
    if _NL in text:
        text = text.replace(_NL, " ")
    text = " ".join(text.split())
    return text or None


def clean_multiline(text: str | None) -> str | None:
    """Long text: ``<br>`` to newline, other whitespace collapsed, <= 1 blank line in a row."""
    if not text:
        return None
    if "<" in text:
        text = _BR_TEXT.sub(_NL, text)
    out: list[str] = []
    blank = False
    for part in text.split(_NL):
        line = " ".join(part.split())
        if line:
            out.append(line)
            blank = False
        elif out and not blank:
            out.append("")
            blank = True
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) or None


_CRITERIA_LEAD = {
    kind: re.compile(rf"^\s*{kind}\s+criteria\s*:\s*", re.IGNORECASE)
    for kind in ("inclusion", "exclusion")
}


def strip_criteria_lead(text: str | None, kind: str) -> str | None:
    """Drop a leading ``Inclusion criteria:`` (kind="inclusion") or ``Exclusion criteria:``."""
    if not text:
        return None
    text = _CRITERIA_LEAD[kind].sub("", text, count=1).strip()
    return text or None


def split_list(text: str | None) -> list[str]:
    """Split a ``;``-joined WHO list; ``;`` inside ``[...]`` does not split. Empties dropped."""
    if not text:
        return []
    if "[" in text:
        parts: list[str] = []
        depth = 0
        start = 0
        for i, ch in enumerate(text):
            if ch == "[":
                depth += 1
            elif ch == "]":
                depth = max(0, depth - 1)
            elif ch == ";" and depth == 0:
                parts.append(text[start:i])
                start = i + 1
        parts.append(text[start:])
        if depth:  # an unclosed bracket: do not let it swallow the rest
            parts = text.split(";")
    else:
        parts = text.split(";")
    out = []
    for part in parts:
        item = clean_line(part)
        if item:
            out.append(item)
    return out


def unique(items: Iterable[str]) -> list[str]:
    """Items in first-seen order without repeats."""
    return list(dict.fromkeys(items))


def unique_dicts(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Dicts in first-seen order without repeats (exports repeat one contact 4-5 times)."""
    seen: set[tuple[tuple[str, Any], ...]] = set()
    out = []
    for item in items:
        key = tuple(item.items())
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def looks_like_email(text: str | None) -> bool:
    return bool(text) and re.fullmatch(r"[^\s@;]+@[^\s@;]+\.[^\s@;]+", text) is not None


def http_url(text: str | None) -> str | None:
    """``text`` if it is an http(s) address, else None."""
    text = clean_line(text)
    if text and re.match(r"https?://", text, re.IGNORECASE) and " " not in text:
        return text
    return None


def parse_yes_no(text: str | None) -> bool | None:
    t = (clean_line(text) or "").lower()
    if t in ("yes", "y", "true"):
        return True
    if t in ("no", "n", "false"):
        return False
    return None


# --------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------

_MONTHS: dict[str, int] = {}
for _i in range(1, 13):
    _MONTHS[calendar.month_name[_i].lower()] = _i
    _MONTHS[calendar.month_abbr[_i].lower()] = _i
_MONTHS["sept"] = 9
_MONTH_RE = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"

_TIME_SUFFIX = re.compile(r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*[AP]M)?(?:Z|[+-]\d{2}:?\d{2})?)$", re.I)
_D_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_D_YM = re.compile(r"(\d{4})-(\d{1,2})")
_D_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_D_DMY = re.compile(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})")
_D_YMD_SLASH = re.compile(r"(\d{4})[/.](\d{1,2})[/.](\d{1,2})")
_D_DAY_MON_YEAR = re.compile(rf"(\d{{1,2}})(?:st|nd|rd|th)?[\s\-/]+{_MONTH_RE}[\s,\-/]+(\d{{4}})", re.I)
_D_MON_DAY_YEAR = re.compile(rf"{_MONTH_RE}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})", re.I)
_D_MON_YEAR = re.compile(rf"{_MONTH_RE}[\s,\-/]+(\d{{4}})", re.I)
_D_YEAR = re.compile(r"(\d{4})")


#: WHO's "no date" placeholder (the database default), read as no date at all.
_NO_DATE = "1900-01-01"


def _ymd(y: int, m: int, d: int) -> str | None:
    try:
        return _dt.date(y, m, d).isoformat()
    except ValueError:
        return None


def parse_date(text: str | None) -> str | None:
    """ISO 8601 at the precision given; text that is no date is returned cleaned, as given.

    Day-first for numeric dates (the portal writes ``27/01/2020``); a numeric date that is
    impossible day-first but valid month-first (``4/15/2020``) is read month-first.
    ``01/01/1900`` (WHO's placeholder for "no date") is None.
    """
    iso = _parse_date(text)
    return None if iso == _NO_DATE else iso


def _parse_date(text: str | None) -> str | None:
    text = clean_line(text)
    if text is None:
        return None
    t = _TIME_SUFFIX.sub("", text).strip() if ":" in text else text
    m = _D_ISO.fullmatch(t)
    if m:
        return _ymd(int(m[1]), int(m[2]), int(m[3])) or text
    m = _D_COMPACT.fullmatch(t)
    if m:
        return _ymd(int(m[1]), int(m[2]), int(m[3])) or text
    m = _D_DMY.fullmatch(t)
    if m:
        a, b, y = int(m[1]), int(m[2]), int(m[3])
        return _ymd(y, b, a) or _ymd(y, a, b) or text
    m = _D_YMD_SLASH.fullmatch(t)
    if m:
        return _ymd(int(m[1]), int(m[2]), int(m[3])) or text
    m = _D_DAY_MON_YEAR.fullmatch(t)
    if m:
        return _ymd(int(m[3]), _MONTHS[m[2].lower()], int(m[1])) or text
    m = _D_MON_DAY_YEAR.fullmatch(t)
    if m:
        return _ymd(int(m[3]), _MONTHS[m[1].lower()], int(m[2])) or text
    m = _D_MON_YEAR.fullmatch(t)
    if m:
        return f"{int(m[2]):04d}-{_MONTHS[m[1].lower()]:02d}"
    m = _D_YM.fullmatch(t)
    if m and 1 <= int(m[2]) <= 12:
        return f"{int(m[1]):04d}-{int(m[2]):02d}"
    m = _D_YEAR.fullmatch(t)
    if m:
        return m[1]
    return text


# --------------------------------------------------------------------------------------
# Target size
# --------------------------------------------------------------------------------------

_INT_RE = re.compile(r"\d{1,9}|\d{1,3}(?:,\d{3})+")
_GROUP_RE = re.compile(r":\s*(\d{1,9})\s*$")
_MAX_SIZE = 10**15  # the same bound as the ClinicalTrials.gov extractor's


def parse_target_size(text: str | None) -> int | None:
    """An int when the text is one integer (``1,600`` too); for ChiCTR groups
    (``Patients:79;Controls:79;``) the sum of the group counts.  None otherwise.

    Group rule: split on ``;``; the last non-empty part must end in ``:<n>`` (else the text
    is free prose or was cut off by the export, and a partial sum would be wrong); earlier
    parts without a number are part of the next group's label
    (``Medical students; Non-medical students:1300;`` -> 1300).
    """
    text = clean_line(text)
    if text is None:
        return None
    if _INT_RE.fullmatch(text):
        value = int(text.replace(",", ""))
        # "1,000,000,000,000,000,000,000" is no sample size, and an int past 64 bits
        # cannot be stored (orjson); the wording stays in target_size_raw.
        return value if value < _MAX_SIZE else None
    if ":" not in text:
        return None
    parts = [p.strip() for p in text.split(";")]
    parts = [p for p in parts if p]
    if not parts or not _GROUP_RE.search(parts[-1]):
        return None
    total = 0
    for part in parts:
        m = _GROUP_RE.search(part)
        if m:
            total += int(m[1])
    return total if total < _MAX_SIZE else None


# --------------------------------------------------------------------------------------
# Recruitment status
# --------------------------------------------------------------------------------------

STATUS_MAP: dict[str, str | None] = {
    # recruiting
    "recruiting": "recruiting",
    "open": "recruiting",
    "open to recruitment": "recruiting",
    "recruitment open": "recruiting",
    "ongoing": "recruiting",
    "ongoing recruiting": "recruiting",
    "authorised recruiting": "recruiting",
    "authorized recruiting": "recruiting",
    # not recruiting (WHO's own wording: not known to be active or closed)
    "not recruiting": "not_recruiting",
    "no longer recruiting": "not_recruiting",
    "closed": "not_recruiting",
    # not yet recruiting
    "not yet recruiting": "not_yet_recruiting",
    "pending": "not_yet_recruiting",
    "authorised not started": "not_yet_recruiting",
    "authorized not started": "not_yet_recruiting",
    "ongoing not yet recruiting": "not_yet_recruiting",
    # active, not recruiting
    "active not recruiting": "active_not_recruiting",
    "closed follow up continuing": "active_not_recruiting",
    "ongoing recruitment ended": "active_not_recruiting",
    "recruitment completed": "active_not_recruiting",
    "recruitment complete": "active_not_recruiting",
    # closed
    "completed": "completed",
    "complete": "completed",
    "closed follow up complete": "completed",
    "terminated": "terminated",
    "stopped early": "terminated",
    "prematurely ended": "terminated",
    "withdrawn": "withdrawn",
    "suspended": "suspended",
    "temporarily halted": "suspended",
    "temporarily closed": "suspended",
    "enrolling by invitation": "enrolling_by_invitation",
    "unknown": "unknown",
    "unknown status": "unknown",
    "authorised": "unknown",
    "authorized": "unknown",
    # ClinicalTrials.gov expanded access
    "available": "available",
    "no longer available": "no_longer_available",
    "temporarily not available": "temporarily_not_available",
    "approved for marketing": "approved_for_marketing",
    "withheld": "withheld",
    # ICTRP placeholder: no status given
    "not available": None,
}

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def map_recruitment_status(raw: str | None) -> str | None:
    """The vocabulary code for a registry's wording (see the table above), or None."""
    if not raw:
        return None
    key = " ".join(_NON_ALNUM.sub(" ", raw.lower()).split())
    return STATUS_MAP.get(key)
