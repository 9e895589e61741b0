"""Read ClinicalTrials.gov API v2 bodies and normalize a study into a :mod:`pipeline.record`.

Pure functions, no I/O:

* :func:`parse_study`: body of ``GET /api/v2/studies/{nctId}`` -> the raw study dict.
* :func:`parse_studies_page`: body of ``GET /api/v2/studies`` -> (studies, nextPageToken, totalCount).
* :func:`parse_history_version`: body of ``GET /api/int/studies/{nctId}/history/{v}`` ->
  (version, study), with the history endpoint's HTML entities and HTML markup turned into the
  plain text / markdown-like text the live API serves, so both normalize alike.
* :func:`parse_history_index`: body of ``GET /api/int/studies/{nctId}?history=true`` -> the
  list of versions (number, date, status, modules changed).
* :func:`normalize_study`: a raw study dict -> the normalized record.

Whatever the body holds, a malformed document raises :class:`pipeline.errors.ParseError`;
:func:`normalize_study` treats every missing module or wrongly typed value as missing, and only
a study without an NCT ID is an error.  Nothing from ``derivedSection`` (MeSH terms, the
``versionHolder`` date) is read: it changes without any change by the sponsor.

Markup fields (the spec's ``markup`` type: criteria, summaries, descriptions, why stopped) are
markdown in the live API, with CommonMark backslash escapes (``\\<``, ``\\>``, ``\\[``); the
escapes are removed so that the text reads as plain text and equals what the history endpoint
gives once its HTML is converted.
"""

from __future__ import annotations

import html
import re
from typing import Any

import orjson

from pipeline.errors import ParseError
from pipeline.record import Record, empty_record
from pipeline.sources.ctgov.served import split_studies_page

__all__ = [
    "html_to_text",
    "normalize_study",
    "parse_history_index",
    "parse_history_version",
    "parse_studies_page",
    "parse_study",
]

REGISTRY = "ClinicalTrials.gov"
SOURCE = "ctgov"
STUDY_URL = "https://clinicaltrials.gov/study/{}"

_EMPTY: dict[str, Any] = {}
_NO_ITEMS: tuple[()] = ()

# --------------------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------------------


def _snippet(text: bytes | str, limit: int = 60) -> str:
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text[:limit * 4]).decode("utf-8", "replace")
    text = " ".join(text[:limit * 4].split())
    return repr(text[:limit])


def _load_json(body: bytes | str | bytearray | memoryview, what: str) -> Any:
    """Decode ``body`` as JSON or raise ParseError saying why not."""
    if isinstance(body, memoryview):
        body = body.tobytes()
    if isinstance(body, (bytes, bytearray)):
        if body[:3] == b"\xef\xbb\xbf":
            body = body[3:]
    elif isinstance(body, str):
        if body[:1] == "\ufeff":
            body = body[1:]
    else:
        raise ParseError(f"{what}: expected bytes or str, got {type(body).__name__}")
    head = body[:1024].lstrip()
    if not head and not body.strip():
        raise ParseError(f"{what}: empty body where JSON was expected")
    if head[:1] in (b"<", "<"):
        raise ParseError(f"{what}: HTML/XML body where JSON was expected: {_snippet(head)}")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson raises this for truncated or invalid JSON, for nesting deeper than 1024
        # levels and for invalid UTF-8 alike.
        raise ParseError(f"{what}: invalid JSON ({exc}); body starts {_snippet(head)}") from None
    except (RecursionError, MemoryError) as exc:  # pragma: no cover - defensive
        raise ParseError(f"{what}: JSON too deeply nested or too large ({type(exc).__name__})") from None


def _study_nct_id(study: Any) -> str | None:
    if not isinstance(study, dict):
        return None
    protocol = study.get("protocolSection")
    if not isinstance(protocol, dict):
        return None
    ident = protocol.get("identificationModule")
    if not isinstance(ident, dict):
        return None
    nct = ident.get("nctId")
    if isinstance(nct, str):
        nct = nct.strip()
        if nct:
            return nct
    return None


def parse_study(body: bytes | str) -> dict:
    """Body of ``GET /studies/{nctId}`` -> the raw study dict (as served).

    Raises :class:`ParseError` for an empty or HTML body, invalid or truncated JSON, JSON
    nested too deeply, a value that is not an object, and an object without
    ``protocolSection.identificationModule.nctId``.
    """
    data = _load_json(body, "ClinicalTrials.gov study")
    if not isinstance(data, dict):
        raise ParseError(
            f"ClinicalTrials.gov study: expected a JSON object, got {type(data).__name__}"
        )
    if _study_nct_id(data) is None:
        if isinstance(data.get("studies"), list):
            raise ParseError(
                "ClinicalTrials.gov study: got a /studies page ({\"studies\": [...]}), not one study"
            )
        raise ParseError(
            "ClinicalTrials.gov study: no protocolSection.identificationModule.nctId "
            f"(top-level keys: {sorted(data)[:8]})"
        )
    return data


def parse_studies_page(body: bytes | str) -> tuple[list[dict], str | None, int | None]:
    """Body of ``GET /studies`` (JSON) -> (studies, nextPageToken, totalCount).

    A page may hold an empty list.  The last page has no ``nextPageToken`` (None);
    ``totalCount`` is present only with ``countTotal=true`` (else None).  Studies are not
    required to carry an NCT ID here (a ``fields=`` request may trim it away); each must be
    an object.  A well-formed page's studies are :class:`~pipeline.sources.ctgov.served.ServedStudy`
    dicts: only the members the normalizer reads, with each study's bytes as served.
    """
    what = "ClinicalTrials.gov studies page"
    served = split_studies_page(body)
    if served is not None:  # the fast path (see served.py); anything odd is read the thorough way below
        studies, token, total = served
        data = {"nextPageToken": token, "totalCount": total}
    else:
        data = _load_json(body, what)
        if not isinstance(data, dict):
            raise ParseError(f"{what}: expected a JSON object, got {type(data).__name__}")
        studies = data.get("studies")
        if not isinstance(studies, list):
            if _study_nct_id(data) is not None:
                raise ParseError(f"{what}: got a single study, not a {{\"studies\": [...]}} page")
            raise ParseError(
                f"{what}: no \"studies\" list (top-level keys: {sorted(data)[:8]})"
            )
        for i, study in enumerate(studies):
            if not isinstance(study, dict):
                raise ParseError(f"{what}: studies[{i}] is {type(study).__name__}, not an object")
    token = data.get("nextPageToken")
    if not isinstance(token, str) or not token.strip():
        token = None
    total = data.get("totalCount")
    if isinstance(total, bool) or not isinstance(total, int):
        total = None
    return studies, token, total


# --------------------------------------------------------------------------------------
# History endpoint: entities and HTML -> the live API's text
# --------------------------------------------------------------------------------------

#: Keys whose values are ``markup`` in the API's data structure (metadata ``sourceType``
#: MARKUP): the history endpoint serves them as HTML, the live API as markdown.
_MARKUP_KEYS = frozenset(
    {
        "whyStopped",
        "briefSummary",
        "detailedDescription",
        "interventionModelDescription",
        "maskingDescription",
        "description",
        "eligibilityCriteria",
        "genderDescription",
        "studyPopulation",
        "label",
        "comment",
        "timeFrame",
        "accessCriteria",
    }
)

_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)\b([^<>]*)>")
_HAS_TAG_RE = re.compile(r"<(?:/?[A-Za-z][A-Za-z0-9]*\b[^<>]*)>")
_START_RE = re.compile(r"""\bstart\s*=\s*["']?(\d+)""", re.I)
_BLOCK_TAGS = frozenset(
    {
        "p", "div", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
        "pre", "table", "tr", "section", "dl", "dt", "dd",
    }
)
_VOID_TAGS = frozenset({"br", "hr", "img", "input", "meta", "link", "wbr"})


class _Node:
    __slots__ = ("tag", "attrs", "children")

    def __init__(self, tag: str, attrs: str = ""):
        self.tag = tag
        self.attrs = attrs
        self.children: list[_Node | str] = []


def _parse_html(text: str) -> _Node:
    """A forgiving HTML parser for the history endpoint's small rich-text fragments."""
    root = _Node("#root")
    stack = [root]
    pos = 0
    for m in _TAG_RE.finditer(text):
        if m.start() > pos:
            stack[-1].children.append(html.unescape(text[pos:m.start()]))
        pos = m.end()
        closing, tag, attrs = m.group(1), m.group(2).lower(), m.group(3)
        if tag in _VOID_TAGS:
            if tag in ("br", "hr"):
                stack[-1].children.append("\n")
            continue
        if closing:
            for depth in range(len(stack) - 1, 0, -1):
                if stack[depth].tag == tag:
                    del stack[depth:]
                    break
            continue
        if attrs.rstrip().endswith("/"):
            continue
        # Implied end tags: <li> closes an open <li> of the same list, <p> closes an open <p>.
        if tag == "li":
            for depth in range(len(stack) - 1, 0, -1):
                if stack[depth].tag in ("ul", "ol"):
                    break
                if stack[depth].tag == "li":
                    del stack[depth:]
                    break
        elif tag in _BLOCK_TAGS and stack[-1].tag == "p":
            stack.pop()
        node = _Node(tag, attrs)
        stack[-1].children.append(node)
        stack.append(node)
    if pos < len(text):
        stack[-1].children.append(html.unescape(text[pos:]))
    return root


def _inline_text(node: _Node, out: list[str]) -> None:
    for child in node.children:
        if isinstance(child, str):
            out.append(child)
        else:
            _inline_text(child, out)


def _blocks(children: list[_Node | str]) -> list[tuple]:
    """Children -> blocks: ("text", str) or ("list", ordered, start, [item blocks])."""
    blocks: list[tuple] = []
    buf: list[str] = []

    def flush() -> None:
        if buf:
            text = "".join(buf)
            buf.clear()
            lines = [" ".join(line.split()) for line in text.split("\n")]
            while lines and not lines[0]:
                lines.pop(0)
            while lines and not lines[-1]:
                lines.pop()
            if lines:
                blocks.append(("text", "\n".join(lines)))

    for child in children:
        if isinstance(child, str):
            buf.append(child)
            continue
        tag = child.tag
        if tag not in _BLOCK_TAGS:
            _inline_text(child, buf)
            continue
        flush()
        if tag in ("ul", "ol"):
            start = 1
            if tag == "ol":
                m = _START_RE.search(child.attrs)
                if m:
                    start = int(m.group(1))
            items = []
            for item in child.children:
                if isinstance(item, str):
                    if item.strip():
                        items.append([("text", " ".join(item.split()))])
                elif item.tag == "li":
                    items.append(_blocks(item.children))
                else:
                    items.append(_blocks([item]))
            if items:
                blocks.append(("list", tag == "ol", start, items))
        else:
            blocks.extend(_blocks(child.children))
    flush()
    return blocks


def _render(blocks: list[tuple], indent: str, out: list[str]) -> None:
    """Blocks -> markdown-like lines as the live API writes them.

    Blocks are separated by a blank line; list items follow each other directly; an item's
    continuation lines and nested lists are indented under its text ("* " -> 2 spaces,
    "1. " -> 3), as in the live API's ``eligibilityCriteria``.
    """
    for i, block in enumerate(blocks):
        if i:
            out.append("")
        if block[0] == "text":
            for line in block[1].split("\n"):
                out.append(indent + line if line else "")
            continue
        _, ordered, start, items = block
        for k, item in enumerate(items):
            marker = f"{start + k}. " if ordered else "* "
            sub_indent = indent + " " * len(marker)
            first = len(out)
            _render(item, sub_indent, out)
            if len(out) == first:
                out.append(indent + marker.rstrip())
            else:
                out[first] = indent + marker + out[first][len(sub_indent):]


def html_to_text(fragment: str) -> str:
    """An HTML fragment (history endpoint rich text) -> markdown-like plain text lines."""
    lines: list[str] = []
    try:
        _render(_blocks(_parse_html(fragment).children), "", lines)
    except RecursionError:
        # Absurdly deep markup: keep the words, lose the list structure.
        return _multiline(html.unescape(_TAG_RE.sub("\n", fragment))) or ""
    return _multiline("\n".join(lines)) or ""


def _unescape_tree(value: Any, key: str | None = None) -> Any:
    """A copy of ``value`` with every string html-unescaped; HTML markup in markup fields
    turned into text lines."""
    if isinstance(value, str):
        if "<" in value and key in _MARKUP_KEYS and _HAS_TAG_RE.search(value):
            return html_to_text(value)
        if "&" in value:
            return html.unescape(value)
        return value
    if isinstance(value, dict):
        return {k: _unescape_tree(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_unescape_tree(v, key) for v in value]
    return value


def _as_int(value: Any) -> int | None:
    """A non-negative int from an int, an integral float or a string of digits; else None.

    Bounded so that absurd values (and ints too long for ``str()``) count as missing."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        result = value
    elif isinstance(value, float) and value.is_integer():
        result = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if not (text.isdigit() and text.isascii() and len(text) <= 15):
            return None
        result = int(text)
    else:
        return None
    return result if 0 <= result < 10**15 else None


def parse_history_version(body: bytes | str) -> tuple[int, dict]:
    """Body of ``GET /api/int/studies/{nctId}/history/{v}`` -> (v, study).

    The history endpoint serves text with HTML entities (``&#x2F;``, ``&lt;``) and rich-text
    fields as HTML; the returned study has every string unescaped and the HTML of markup
    fields (``eligibilityCriteria`` above all) turned into the plain, markdown-like lines the
    live API gives, so the version normalizes like a live record of the same content.
    """
    what = "ClinicalTrials.gov history version"
    data = _load_json(body, what)
    if not isinstance(data, dict):
        raise ParseError(f"{what}: expected a JSON object, got {type(data).__name__}")
    study = data.get("study")
    if not isinstance(study, dict):
        raise ParseError(f"{what}: no \"study\" object (top-level keys: {sorted(data)[:8]})")
    version = _as_int(data.get("studyVersion"))
    if version is None or version < 0:
        raise ParseError(f"{what}: missing or invalid studyVersion {data.get('studyVersion')!r}")
    if _study_nct_id(study) is None:
        raise ParseError(f"{what}: study has no protocolSection.identificationModule.nctId")
    try:
        return version, _unescape_tree(study)
    except RecursionError:
        raise ParseError(f"{what}: study nested too deeply") from None


def parse_history_index(body: bytes | str) -> list[dict]:
    """Body of ``GET /api/int/studies/{nctId}?history=true`` -> the versions, sorted.

    Each item is ``{"version": int, "date": str | None, "status": str | None,
    "modules": list[str]}``.  Tolerant of missing keys: changes without a usable version
    number are skipped, a body without ``history.changes`` gives ``[]``.  (The endpoint is
    undocumented; the shape accepted is the one established tools rely on.)
    """
    what = "ClinicalTrials.gov history index"
    data = _load_json(body, what)
    if not isinstance(data, dict):
        raise ParseError(f"{what}: expected a JSON object, got {type(data).__name__}")
    history = data.get("history")
    if not isinstance(history, dict):
        study = data.get("study")
        history = study.get("history") if isinstance(study, dict) else None
    if not isinstance(history, dict):
        return []
    changes = history.get("changes")
    if not isinstance(changes, list):
        return []
    by_version: dict[int, dict] = {}
    for change in changes:
        if not isinstance(change, dict):
            continue
        version = _as_int(change.get("version"))
        if version is None or version < 0:
            continue
        date = change.get("date")
        date = _date(date) if isinstance(date, str) else None
        status = _s(change.get("status"))
        modules = change.get("moduleLabels")
        if not isinstance(modules, list):
            modules = change.get("modules")
        modules = _str_list(modules)
        by_version[version] = {
            "version": version,
            "date": date,
            "status": status,
            "modules": modules,
        }
    return [by_version[v] for v in sorted(by_version)]


# --------------------------------------------------------------------------------------
# Value helpers (hot path: plain str ops, no regex per item)
# --------------------------------------------------------------------------------------


def _d(value: Any) -> dict:
    return value if isinstance(value, dict) else _EMPTY


def _l(value: Any) -> list | tuple:
    return value if isinstance(value, list) else _NO_ITEMS


def _s(value: Any) -> str | None:
    """A single-line string: internal whitespace runs collapsed, None when empty/not str."""
    if value.__class__ is not str:
        return None
    text = " ".join(value.split())
    return text or None


_MD_ESCAPE_RE = re.compile(r"\\([!-/:-@\[-`{-~])")
_BLANK_RUN_RE = re.compile(r"\n{3,}")


def _md(value: str) -> str:
    """Remove CommonMark backslash escapes (``\\<`` -> ``<``) from a markup value."""
    return _MD_ESCAPE_RE.sub(r"\1", value) if "\\" in value else value


def _multiline(value: Any) -> str | None:
    """A multi-line string: trailing spaces of each line stripped, 3+ newlines -> 2, ends
    stripped; None when empty/not str."""
    if value.__class__ is not str:
        return None
    text = value
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if " \n" in text or "\t\n" in text or "\u00a0\n" in text:
        text = "\n".join([line.rstrip() for line in text.split("\n")])
    text = text.strip()
    if "\n\n\n" in text:
        text = _BLANK_RUN_RE.sub("\n\n", text)
    return text or None


def _markup_line(value: Any) -> str | None:
    text = _s(value)
    return _md(text) if text else None


def _markup_text(value: Any) -> str | None:
    if value.__class__ is not str:
        return None
    return _multiline(_md(value))


def _str_list(value: Any) -> list[str]:
    out = []
    for item in _l(value):
        if item.__class__ is str:
            text = " ".join(item.split())
            if text:
                out.append(text)
    return out


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


_MONTHS = {
    name: f"{i:02d}"
    for i, names in enumerate(
        (
            ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"),
            ("may",), ("june", "jun"), ("july", "jul"), ("august", "aug"),
            ("september", "sep", "sept"), ("october", "oct"), ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}


def _date(value: Any) -> str | None:
    """An ISO date at the precision given ("2024", "2024-09", "2024-09-30").

    API v2 serves ISO already; legacy wording ("September 2024", "September 30, 2024") is
    converted; anything else is kept as given (stripped) rather than lost.
    """
    if value.__class__ is not str:
        return None
    text = value.strip()
    if not text:
        return None
    n = len(text)
    if (n == 10 or n == 7 or n == 4) and text[:4].isdigit():
        return text
    parts = text.replace(",", " ").split()
    if 2 <= len(parts) <= 3 and parts[0].lower() in _MONTHS and parts[-1].isdigit():
        month = _MONTHS[parts[0].lower()]
        if len(parts) == 2 and len(parts[1]) == 4:
            return f"{parts[1]}-{month}"
        if len(parts) == 3 and parts[1].isdigit() and len(parts[2]) == 4:
            return f"{parts[2]}-{month}-{int(parts[1]):02d}"
    return text


def _struct_date(value: Any) -> str | None:
    return _date(value.get("date")) if isinstance(value, dict) else None


# --------------------------------------------------------------------------------------
# Enumerations -> words
# --------------------------------------------------------------------------------------

_ENUM_WORDS: dict[str, str] = {
    # DesignAllocation (WHO portal wording for CT.gov records)
    "NON_RANDOMIZED": "Non-Randomized",
    "NA": "N/A",
    # PrimaryPurpose
    "ECT": "Educational/Counseling/Training",
    # ResponsiblePartyType
    "SPONSOR_INVESTIGATOR": "Sponsor-Investigator",
    # OfficialRole / ContactRole
    "SUB_INVESTIGATOR": "Sub-Investigator",
    # DesignTimePerspective
    "CROSS_SECTIONAL": "Cross-Sectional",
    # ObservationalModel
    "CASE_CONTROL": "Case-Control",
    "CASE_ONLY": "Case-Only",
    "CASE_CROSSOVER": "Case-Crossover",
    "FAMILY_BASED": "Family-Based",
    "ECOLOGIC_OR_COMMUNITY": "Ecologic or Community",
}
_MODEL_WORDS = {
    "SINGLE_GROUP": "Single Group Assignment",
    "PARALLEL": "Parallel Assignment",
    "CROSSOVER": "Crossover Assignment",
    "FACTORIAL": "Factorial Assignment",
    "SEQUENTIAL": "Sequential Assignment",
}
_MASKING_WORDS = {"NONE": "None (Open Label)"}
_word_cache: dict[str, str] = {}


def _words(value: Any) -> str | None:
    """An enum code as words: "ACTIVE_COMPARATOR" -> "Active Comparator".

    Values that are not codes (mixed case, no underscore) are kept as given.
    """
    if value.__class__ is not str:
        return None
    cached = _word_cache.get(value)
    if cached is not None:
        return cached
    text = " ".join(value.split())
    if not text:
        return None
    if text in _ENUM_WORDS:
        result = _ENUM_WORDS[text]
    elif text.isupper() or "_" in text:
        result = " ".join(w.capitalize() for w in text.replace("_", " ").split())
    else:
        result = text
    if len(_word_cache) < 4096:
        _word_cache[value] = result
    return result


def _phase_word(code: str) -> str | None:
    code = code.strip()
    if not code:
        return None
    if code == "NA":
        return "N/A"
    upper = code.upper()
    if upper.startswith("EARLY_PHASE") and upper[11:].isdigit():
        return f"Early Phase {upper[11:]}"
    if upper.startswith("PHASE") and upper[5:].isdigit():
        return f"Phase {upper[5:]}"
    return _words(code)


def _phase(phases: Any) -> str | None:
    words = [w for p in _l(phases) if p.__class__ is str for w in (_phase_word(p),) if w]
    return "/".join(words) if words else None


def _study_design(design: dict) -> str | None:
    """designInfo as one line, in the WHO portal's wording for CT.gov records:
    "Allocation: Randomized. Intervention model: Parallel Assignment. Primary purpose:
    Treatment. Masking: Double (Participant, Investigator)."  Observational designs read
    "Observational model: Cohort. Time perspective: Prospective."  Best effort."""
    info = _d(design.get("designInfo"))
    parts: list[str] = []
    allocation = _words(info.get("allocation"))
    if allocation:
        parts.append(f"Allocation: {allocation}.")
    model = info.get("interventionModel")
    if model.__class__ is str and model.strip():
        parts.append(f"Intervention model: {_MODEL_WORDS.get(model.strip()) or _words(model)}.")
    purpose = _words(info.get("primaryPurpose"))
    if purpose:
        parts.append(f"Primary purpose: {purpose}.")
    masking_info = _d(info.get("maskingInfo"))
    masking = masking_info.get("masking")
    if masking.__class__ is str and masking.strip():
        text = _MASKING_WORDS.get(masking.strip()) or _words(masking)
        who = [_words(w) for w in _l(masking_info.get("whoMasked")) if w.__class__ is str]
        who = [w for w in who if w]
        if who:
            text = f"{text} ({', '.join(who)})"
        parts.append(f"Masking: {text}.")
    observational = _words(info.get("observationalModel"))
    if observational:
        parts.append(f"Observational model: {observational}.")
    perspective = _words(info.get("timePerspective"))
    if perspective:
        parts.append(f"Time perspective: {perspective}.")
    if not parts:
        access = _d(design.get("expandedAccessTypes"))
        kinds = [
            label
            for key, label in (
                ("individual", "Individual Patients"),
                ("intermediate", "Intermediate-size Population"),
                ("treatment", "Treatment IND/Protocol"),
            )
            if access.get(key) is True
        ]
        if kinds:
            parts.append(f"Expanded access type: {', '.join(kinds)}.")
    return " ".join(parts) if parts else None


# --------------------------------------------------------------------------------------
# Eligibility criteria: split on the Inclusion / Exclusion headings
# --------------------------------------------------------------------------------------

_HEADING_RE = re.compile(
    r"^(?:(?:key|main|major|general|principal|additional|specific|other|basic|detailed|"
    r"study|patient|patients|participant|participants|subject|subjects)\s+){0,2}"
    r"(inclusion|exclusion)(\s+criteria|\s+criterion|s)?\b(.*)$",
    re.I | re.S,
)
_LIST_MARKER_RE = re.compile(r"^(?:[*+-]|\d{1,3}[.)]|[a-z][.)])\s")


def _heading(line: str) -> tuple[str, str | None] | None:
    """("inc"|"exc", text to keep or None) when ``line`` is an Inclusion/Exclusion heading.

    Accepted: "Inclusion Criteria:", "Key Exclusion Criteria", "**INCLUSION CRITERIA:**",
    "Exclusion:", "Exclusion Criteria: None" (the text after the colon is kept) and
    qualified headings such as "Inclusion Criteria for Cohort B:" (kept as a line).  A list
    item ("* Exclusion criteria: ...") is never a heading.
    """
    stripped = line.strip()
    if len(stripped) > 300 or _LIST_MARKER_RE.match(stripped):
        return None
    cleaned = stripped.strip("*#_").strip()
    m = _HEADING_RE.match(cleaned)
    if m is None:
        return None
    which = "inc" if m.group(1).lower() == "inclusion" else "exc"
    has_criteria = bool(m.group(2)) and m.group(2).lower() != "s"
    rest = m.group(3).strip().strip("*_").strip()
    if rest in ("", ":", "-", ".", "\u2013", "\u2014"):
        if rest == "" and not has_criteria:
            return None  # a bare "Inclusion" is too ambiguous without a colon
        return which, None
    if rest[0] in ":-\u2013\u2014":
        return which, rest[1:].strip() or None  # "Exclusion Criteria: None"
    if has_criteria and rest.endswith(":") and len(rest) <= 80:
        return which, cleaned  # "Inclusion Criteria for Cohort B:": keep the qualifier
    return None


def _split_criteria(text: str | None) -> tuple[str | None, str | None]:
    """Eligibility text -> (inclusion, exclusion), split on the headings; all text is
    inclusion when there is no heading."""
    if not text:
        return None, None
    low = text.lower()
    if "clusion" not in low:
        return text, None
    sections: dict[str, list[str]] = {"inc": [], "exc": []}
    current = sections["inc"]
    for line, low_line in zip(text.split("\n"), low.split("\n")):
        if "clusion" in low_line:
            found = _heading(line)
            if found is not None:
                which, keep = found
                current = sections[which]
                if current:
                    current.append("")
                if keep:
                    current.append(keep)
                continue
        current.append(line)
    return _multiline("\n".join(sections["inc"])), _multiline("\n".join(sections["exc"]))


# --------------------------------------------------------------------------------------
# normalize_study
# --------------------------------------------------------------------------------------


def _outcomes(items: Any) -> tuple[list[str], list[dict]]:
    lines: list[str] = []
    details: list[dict] = []
    for item in _l(items):
        if item.__class__ is not dict:
            continue
        measure = _s(item.get("measure"))
        time_frame = _s(item.get("timeFrame"))
        description = _markup_text(item.get("description"))
        if measure is None and time_frame is None and description is None:
            continue
        if measure is not None:
            lines.append(f"{measure} [Time Frame: {time_frame}]" if time_frame else measure)
        elif time_frame is not None:
            lines.append(f"[Time Frame: {time_frame}]")
        details.append({"measure": measure, "description": description, "time_frame": time_frame})
    return lines, details


def _locations(items: Any) -> tuple[list[str], list[str]]:
    """(location strings "Facility, City, State, Country [STATUS]", sorted unique countries).

    Hot loop (a study may list over a thousand sites): plain str ops only."""
    out: list[str] = []
    countries: set[str] = set()
    for loc in _l(items):
        if loc.__class__ is not dict:
            continue
        get = loc.get
        parts = []
        for value in (get("facility"), get("city"), get("state")):
            if value.__class__ is str:
                value = " ".join(value.split())
                if value:
                    parts.append(value)
        value = get("country")
        if value.__class__ is str:
            value = " ".join(value.split())
            if value:
                parts.append(value)
                countries.add(value)
        if not parts:
            continue
        text = ", ".join(parts)
        status = get("status")
        if status.__class__ is str:
            status = status.strip()
            if status:
                text = f"{text} [{status}]"
        out.append(text)
    return out, sorted(countries)


def _interventions(items: Any) -> list[str]:
    out = []
    for item in _l(items):
        if item.__class__ is not dict:
            continue
        name = _s(item.get("name"))
        if name is None:
            continue
        kind = _words(item.get("type"))
        out.append(f"{kind}: {name}" if kind else name)
    return out


def _arm_groups(items: Any) -> list[dict]:
    out = []
    for item in _l(items):
        if item.__class__ is not dict:
            continue
        arm = {
            "label": _s(item.get("label")),
            "type": _words(item.get("type")),
            "description": _markup_text(item.get("description")),
            "interventions": _str_list(item.get("interventionNames")),
        }
        if arm["label"] or arm["description"] or arm["interventions"]:
            out.append(arm)
    return out


def _officials(items: Any) -> list[str]:
    out = []
    for item in _l(items):
        if item.__class__ is not dict:
            continue
        name = _s(item.get("name"))
        if name is None:
            continue
        extra = [x for x in (_words(item.get("role")), _s(item.get("affiliation"))) if x]
        out.append(f"{name} ({', '.join(extra)})" if extra else name)
    return out


def _responsible_party(party: dict) -> str | None:
    kind = _words(party.get("type"))
    name = _s(party.get("investigatorFullName")) or _s(party.get("oldNameTitle"))
    if kind and name:
        return f"{kind}: {name}"
    return kind or name


def _ipd_sharing(module: dict) -> str | None:
    choice = _words(module.get("ipdSharing"))
    description = _markup_line(module.get("description"))
    if choice and description:
        return f"{choice}: {description}"
    return choice or description


def normalize_study(study: dict) -> Record:
    """A raw API v2 study (or a history version from :func:`parse_history_version`) -> record.

    Fills every COMMON and CTGOV_EXTRA field of :mod:`pipeline.record`.  Missing modules and
    wrongly typed values count as missing (None / []); only a study without an NCT ID raises
    :class:`ParseError`.  Nothing from ``derivedSection`` is read.
    """
    nct_id = _study_nct_id(study)
    if nct_id is None:
        raise ParseError("ClinicalTrials.gov study: no protocolSection.identificationModule.nctId")
    protocol = study["protocolSection"]
    ident = protocol["identificationModule"]
    status = _d(protocol.get("statusModule"))
    sponsors = _d(protocol.get("sponsorCollaboratorsModule"))
    description = _d(protocol.get("descriptionModule"))
    conditions = _d(protocol.get("conditionsModule"))
    design = _d(protocol.get("designModule"))
    arms = _d(protocol.get("armsInterventionsModule"))
    outcomes = _d(protocol.get("outcomesModule"))
    eligibility = _d(protocol.get("eligibilityModule"))
    contacts = _d(protocol.get("contactsLocationsModule"))

    record = empty_record(nct_id, SOURCE, REGISTRY)
    record["public_title"] = _s(ident.get("briefTitle"))
    record["scientific_title"] = _s(ident.get("officialTitle"))
    record["acronym"] = _s(ident.get("acronym"))

    raw_status = _s(status.get("overallStatus"))
    record["recruitment_status_raw"] = raw_status
    # Codes of the API's Status enum lower-cased are STATUS_VOCABULARY; an unknown code is
    # kept (lower-cased) rather than lost.
    record["recruitment_status"] = raw_status.lower().replace(" ", "_") if raw_status else None

    record["date_registration"] = _date(status.get("studyFirstSubmitDate"))
    record["date_first_enrolment"] = _struct_date(status.get("startDateStruct"))
    record["completion_date"] = _struct_date(status.get("completionDateStruct"))
    record["primary_completion_date"] = _struct_date(status.get("primaryCompletionDateStruct"))
    record["last_updated"] = _struct_date(status.get("lastUpdatePostDateStruct"))
    record["date_results_first_posted"] = _struct_date(status.get("resultsFirstPostDateStruct"))
    record["why_stopped"] = _markup_line(status.get("whyStopped"))

    enrollment = _d(design.get("enrollmentInfo"))
    count = _as_int(enrollment.get("count"))
    record["target_size"] = count
    record["target_size_raw"] = str(count) if count is not None else None
    record["enrollment_type"] = _words(enrollment.get("type"))

    lead = _s(_d(sponsors.get("leadSponsor")).get("name"))
    collaborators = _unique(
        [name for c in _l(sponsors.get("collaborators")) for name in (_s(_d(c).get("name")),) if name]
    )
    record["primary_sponsor"] = lead
    record["secondary_sponsors"] = collaborators
    # CT.gov has no list of funding sources (WHO item 4); the lead sponsor and the
    # collaborators are the closest it records, so they stand in for it.
    record["funding"] = _unique(([lead] if lead else []) + collaborators)
    record["responsible_party"] = _responsible_party(_d(sponsors.get("responsibleParty")))

    locations, countries = _locations(contacts.get("locations"))
    record["locations"] = locations
    record["countries"] = countries
    record["overall_officials"] = _officials(contacts.get("overallOfficials"))
    record["central_contacts"] = [
        name for c in _l(contacts.get("centralContacts")) for name in (_s(_d(c).get("name")),) if name
    ]

    record["conditions"] = _str_list(conditions.get("conditions"))
    record["keywords"] = _str_list(conditions.get("keywords"))
    record["interventions"] = _interventions(arms.get("interventions"))
    record["arm_groups"] = _arm_groups(arms.get("armGroups"))

    record["primary_outcomes"], record["primary_outcomes_detail"] = _outcomes(
        outcomes.get("primaryOutcomes")
    )
    record["secondary_outcomes"], record["secondary_outcomes_detail"] = _outcomes(
        outcomes.get("secondaryOutcomes")
    )
    record["other_outcomes"] = _outcomes(outcomes.get("otherOutcomes"))[0]

    org_id = _s(_d(ident.get("orgStudyIdInfo")).get("id"))
    secondary = [org_id] if org_id else []
    for info in _l(ident.get("secondaryIdInfos")):
        sid = _s(_d(info).get("id"))
        if sid:
            secondary.append(sid)
    record["secondary_ids"] = _unique(secondary)

    record["study_type"] = _words(design.get("studyType"))
    record["study_design"] = _study_design(design)
    record["phase"] = _phase(design.get("phases"))

    record["age_min"] = _s(eligibility.get("minimumAge"))
    record["age_max"] = _s(eligibility.get("maximumAge"))
    record["gender"] = _words(eligibility.get("sex"))
    healthy = eligibility.get("healthyVolunteers")
    record["healthy_volunteers"] = healthy if healthy.__class__ is bool else None
    record["inclusion_criteria"], record["exclusion_criteria"] = _split_criteria(
        _markup_text(eligibility.get("eligibilityCriteria"))
    )

    record["brief_summary"] = _markup_text(description.get("briefSummary"))
    record["detailed_description"] = _markup_text(description.get("detailedDescription"))
    record["ipd_sharing"] = _ipd_sharing(_d(protocol.get("ipdSharingStatementModule")))

    has_results = study.get("hasResults")
    record["results_posted"] = has_results if has_results.__class__ is bool else None
    record["url"] = STUDY_URL.format(nct_id)
    return record


def study_nct_ids(study: dict) -> list[str]:
    """The NCT ID of a study and any aliases it was merged from."""
    ident = (study.get("protocolSection") or {}).get("identificationModule") or {}
    ids = []
    if isinstance(ident.get("nctId"), str):
        ids.append(ident["nctId"])
    aliases = ident.get("nctIdAliases")
    if isinstance(aliases, list):
        ids += [a for a in aliases if isinstance(a, str)]
    return ids


def study_status(study: dict) -> str | None:
    """A study's ``overallStatus`` as the API spells it (RECRUITING, COMPLETED...)."""
    status = ((study.get("protocolSection") or {}).get("statusModule") or {}).get("overallStatus")
    return status if isinstance(status, str) else None
