"""The ClinicalTrials.gov API v2 ``/studies`` search, over a :class:`Corpus`.

Parameters follow the OpenAPI spec (fixtures/ctgov/openapi/ctg-oas-v2.yaml):
``filter.ids`` (comma/pipe/space separated), ``query.cond|term|intr|spons`` (matched as
case-insensitive words; ``OR`` between alternatives, quoted phrases), ``filter.overallStatus``,
``filter.advanced`` (``AREA[<date field>]RANGE[<from>,<to>]`` with ``MIN``/``MAX``, joined by
``AND``), ``pageSize`` (default 10, coerced down to 1,000), ``pageToken``, ``countTotal``
(first page only), ``fields`` and ``sort`` (ignored).  Unknown parameters and malformed
values are a 400 with a text/plain message, like the real service.

Page tokens are opaque and bound to the query: a token carries the offset and a MAC
over the query parameters (all but ``pageToken``, ``pageSize`` and ``countTotal``, which
the spec lets change between pages), so a token replayed with another query is a 400.
A response is assembled by joining the studies' cached bytes, never re-serialized.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import struct
import threading
from collections import OrderedDict
from typing import Any

import orjson

from pipeline.simulator.corpus import Corpus, Trial

KNOWN_PARAMS = frozenset({
    "format", "markupFormat", "query.cond", "query.term", "query.intr", "query.spons",
    "query.locn", "query.titles", "query.outc", "query.id", "query.lead", "query.patient",
    "filter.ids", "filter.overallStatus", "filter.advanced", "filter.geo", "filter.synonyms",
    "postFilter.ids", "postFilter.overallStatus", "postFilter.advanced", "aggFilters",
    "fields", "sort", "countTotal", "pageSize", "pageToken",
})
STATUSES = frozenset({
    "ACTIVE_NOT_RECRUITING", "COMPLETED", "ENROLLING_BY_INVITATION", "NOT_YET_RECRUITING",
    "RECRUITING", "SUSPENDED", "TERMINATED", "WITHDRAWN", "AVAILABLE", "NO_LONGER_AVAILABLE",
    "TEMPORARILY_NOT_AVAILABLE", "APPROVED_FOR_MARKETING", "WITHHELD", "UNKNOWN",
})
_NCT_PARAM = re.compile(r"^[Nn][Cc][Tt]0*([1-9]\d{0,7})$")
_SPLIT = re.compile(r"[,|\s]+")
_RANGE = re.compile(r"^\s*AREA\[(\w+)\]\s*RANGE\[\s*([^,\]]+?)\s*,\s*([^\]]+?)\s*\]\s*$", re.IGNORECASE)
_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")
#: Date areas filter.advanced understands -> state key.
DATE_AREAS = {"lastupdatepostdate": "last_update", "studyfirstpostdate": "first_post",
              "startdate": "start", "completiondate": "completion",
              "primarycompletiondate": "primary_completion", "studyfirstsubmitdate": "first_submit"}
#: Piece names of ``fields`` -> path in the study object.
FIELD_PIECES = {
    "nctid": ("protocolSection", "identificationModule", "nctId"),
    "brieftitle": ("protocolSection", "identificationModule", "briefTitle"),
    "officialtitle": ("protocolSection", "identificationModule", "officialTitle"),
    "acronym": ("protocolSection", "identificationModule", "acronym"),
    "overallstatus": ("protocolSection", "statusModule", "overallStatus"),
    "whystopped": ("protocolSection", "statusModule", "whyStopped"),
    "lastupdatepostdate": ("protocolSection", "statusModule", "lastUpdatePostDateStruct"),
    "startdate": ("protocolSection", "statusModule", "startDateStruct"),
    "completiondate": ("protocolSection", "statusModule", "completionDateStruct"),
    "primarycompletiondate": ("protocolSection", "statusModule", "primaryCompletionDateStruct"),
    "enrollmentcount": ("protocolSection", "designModule", "enrollmentInfo", "count"),
    "enrollmentinfo": ("protocolSection", "designModule", "enrollmentInfo"),
    "condition": ("protocolSection", "conditionsModule", "conditions"),
    "leadsponsorname": ("protocolSection", "sponsorCollaboratorsModule", "leadSponsor", "name"),
    "hasresults": ("hasResults",),
    "statusmodule": ("protocolSection", "statusModule"),
    "identificationmodule": ("protocolSection", "identificationModule"),
    "protocolsection": ("protocolSection",),
    "derivedsection": ("derivedSection",),
    "resultssection": ("resultsSection",),
}
_ID_ONLY = {("protocolSection", "identificationModule", "nctId")}


class BadRequest(Exception):
    """A 400: the message is the text/plain body."""


def split_ids(raw: str) -> list[str]:
    """NCT IDs of a ``filter.ids`` value, canonical (``NCT`` + 8 digits); 400 when malformed."""
    out = []
    for part in _SPLIT.split(raw.strip()):
        if not part:
            continue
        m = _NCT_PARAM.match(part)
        if not m:
            raise BadRequest(f"filter.ids: invalid NCT ID {part[:40]!r}")
        out.append(f"NCT{int(m.group(1)):08d}")
    return out


def _parse_terms(raw: str) -> list[list[str]]:
    """Essie-lite: alternatives split on ``OR``; each a list of words/phrases that must all occur."""
    alts = []
    for alt in re.split(r"\s+OR\s+", raw.strip()):
        parts = re.findall(r'"([^"]+)"|(\S+)', alt)
        words = [(a or b).lower() for a, b in parts if (a or b) and (a or b) not in ("AND",)]
        words = [w.strip("()") for w in words if w.strip("()")]
        if words:
            alts.append(words)
    return alts


def _matches(hay: str, alts: list[list[str]]) -> bool:
    return any(all(w in hay for w in words) for words in alts)


def _parse_advanced(raw: str) -> list[tuple[str, str | None, str | None]]:
    conds = []
    for part in re.split(r"\s+AND\s+", raw.strip()):
        m = _RANGE.match(part)
        if not m:
            raise BadRequest(f"filter.advanced: unsupported expression {part[:80]!r} "
                             "(the simulator knows AREA[<DateField>]RANGE[from,to])")
        area = m.group(1).lower()
        if area not in DATE_AREAS:
            raise BadRequest(f"filter.advanced: unknown area {m.group(1)!r}")
        lo, hi = m.group(2), m.group(3)
        bounds = []
        for v in (lo, hi):
            if v.upper() in ("MIN", "MAX"):
                bounds.append(None)
            elif _DATE.match(v):
                bounds.append(v)
            else:
                raise BadRequest(f"filter.advanced: invalid date {v!r}")
        conds.append((DATE_AREAS[area], bounds[0], bounds[1]))
    return conds


def _state_date(state: dict[str, Any], key: str) -> str:
    v = state[key]
    return v[0] if isinstance(v, tuple) else v


def _in_range(value: str, lo: str | None, hi: str | None) -> bool:
    # Month-precision values compare by their month; bounds may be months too.
    if lo is not None and value[:len(lo)] < lo[:len(value)]:
        return False
    if hi is not None and value[:len(hi)] > hi[:len(value)]:
        return False
    return True


class StudiesApi:
    """``/studies`` for one corpus (holds the page-token key and a small match cache)."""

    def __init__(self, corpus: Corpus):
        self.corpus = corpus
        self._key = secrets.token_bytes(16)
        self._cache: OrderedDict[tuple[bytes, int], list[Trial]] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ tokens
    def _query_digest(self, params: dict[str, list[str]]) -> bytes:
        items = sorted((k, tuple(v)) for k, v in params.items() if k not in ("pageToken", "pageSize", "countTotal"))
        return hashlib.sha256(repr(items).encode()).digest()

    def make_token(self, offset: int, digest: bytes) -> str:
        body = struct.pack(">I", offset) + digest[:6]
        mac = hmac.new(self._key, body, hashlib.sha256).digest()[:6]
        return base64.urlsafe_b64encode(body + mac).decode().rstrip("=")

    def read_token(self, token: str, digest: bytes) -> int:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            raw = b""
        if len(raw) != 16:
            raise BadRequest("pageToken: invalid token")
        body, mac = raw[:10], raw[10:]
        if not hmac.compare_digest(mac, hmac.new(self._key, body, hashlib.sha256).digest()[:6]):
            raise BadRequest("pageToken: invalid token")
        if body[4:] != digest[:6]:
            raise BadRequest("pageToken: the token belongs to a request with other parameters")
        return struct.unpack(">I", body[:4])[0]

    # ------------------------------------------------------------------ matching
    def _match(self, params: dict[str, list[str]], digest: bytes) -> list[Trial]:
        corpus = self.corpus
        key = (digest, corpus.generation)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        one = {k: v[-1] for k, v in params.items()}
        trials: list[Trial]
        if "filter.ids" in one or "postFilter.ids" in one:
            wanted: list[str] = []
            for k in ("filter.ids", "postFilter.ids"):
                if k in one:
                    wanted += split_ids(one[k])
            wanted_set = set(wanted)
            trials = [t for t in corpus.iter_live_nct() if t.trial_id in wanted_set]
        else:
            trials = list(corpus.iter_live_nct())
        for k in ("filter.overallStatus", "postFilter.overallStatus"):
            if k in one and one[k].strip():
                statuses = {s.strip().upper() for s in re.split(r"[,|]", one[k]) if s.strip()}
                bad = statuses - STATUSES
                if bad:
                    raise BadRequest(f"{k}: unknown status {sorted(bad)[0]!r}")
                trials = [t for t in trials if t.state["status"] in statuses]
        for k in ("filter.advanced", "postFilter.advanced"):
            if k in one and one[k].strip():
                for state_key, lo, hi in _parse_advanced(one[k]):
                    trials = [t for t in trials if _in_range(_state_date(t.state, state_key), lo, hi)]
        for k, slot in (("query.cond", 0), ("query.intr", 1), ("query.spons", 2), ("query.lead", 2),
                        ("query.term", 3), ("query.titles", 3)):
            if k in one and one[k].strip():
                alts = _parse_terms(one[k])
                if alts:
                    trials = [t for t in trials if _matches(corpus.search_text(t)[slot], alts)]
        if "query.id" in one and one["query.id"].strip():
            alts = _parse_terms(one["query.id"])
            trials = [t for t in trials if _matches(t.trial_id.lower(), alts)]
        with self._lock:
            self._cache[key] = trials
            while len(self._cache) > 64:
                self._cache.popitem(last=False)
        return trials

    # ------------------------------------------------------------------ fields
    @staticmethod
    def parse_fields(raw: str) -> list[tuple[str, ...]]:
        paths = []
        for f in re.split(r"[,|]", raw):
            f = f.strip()
            if not f:
                continue
            if "." in f:
                paths.append(tuple(f.split(".")))
            elif f.lower() in FIELD_PIECES:
                paths.append(FIELD_PIECES[f.lower()])
            else:
                raise BadRequest(f"fields: unknown field {f[:60]!r}")
        if not paths:
            raise BadRequest("fields: must be a non-empty list")
        return paths

    @staticmethod
    def trim(study: dict[str, Any], paths: list[tuple[str, ...]]) -> dict[str, Any]:
        """The parts of ``study`` at ``paths``, nested as in the study (absent ones skipped)."""
        out: dict[str, Any] = {}
        for path in paths:
            cur: Any = study
            for p in path:
                if not isinstance(cur, dict) or p not in cur:
                    cur = _MISSING
                    break
                cur = cur[p]
            if cur is _MISSING:
                continue
            node = out
            for p in path[:-1]:
                node = node.setdefault(p, {})
            node[path[-1]] = cur
        return out

    def study_bytes_for(self, t: Trial, paths: list[tuple[str, ...]] | None) -> bytes:
        if paths is None:
            return b"".join(self.corpus.study_parts(t))
        if set(paths) <= _ID_ONLY:
            return b'{"protocolSection":{"identificationModule":{"nctId":"' + t.trial_id.encode() + b'"}}}'
        full = orjson.loads(b"".join(self.corpus.study_parts(t)))
        return orjson.dumps(self.trim(full, paths))

    # ------------------------------------------------------------------ the endpoint
    def list_studies(self, params: dict[str, list[str]]) -> tuple[bytes, list[str]]:
        """Body of ``GET /studies`` and the IDs on the page; raises :class:`BadRequest`."""
        unknown = [k for k in params if k not in KNOWN_PARAMS]
        if unknown:
            raise BadRequest(f"unknown parameter {unknown[0][:60]!r}")
        one = {k: v[-1] for k, v in params.items()}
        fmt = one.get("format", "json").lower()
        if fmt != "json":
            raise BadRequest(f"format: the simulator serves json only, not {fmt[:20]!r}")
        try:
            size = int(one.get("pageSize") or 10)
        except ValueError:
            raise BadRequest(f"pageSize: not an integer: {one['pageSize'][:20]!r}") from None
        if size < 0:
            raise BadRequest("pageSize: must be >= 0")
        size = min(size or 10, 1000)
        count_total = one.get("countTotal", "false").lower()
        if count_total not in ("true", "false"):
            raise BadRequest("countTotal: must be true or false")
        paths = self.parse_fields(one["fields"]) if "fields" in one else None
        digest = self._query_digest(params)
        offset = self.read_token(one["pageToken"], digest) if one.get("pageToken") else 0
        trials = self._match(params, digest)
        page = trials[offset:offset + size]
        parts: list[bytes] = []
        if count_total == "true" and not one.get("pageToken"):
            parts.append(b'{"totalCount":' + str(len(trials)).encode() + b',"studies":[')
        else:
            parts.append(b'{"studies":[')
        parts.append(b",".join(self.study_bytes_for(t, paths) for t in page))
        if offset + size < len(trials):
            parts.append(b'],"nextPageToken":"' + self.make_token(offset + size, digest).encode() + b'"}')
        else:
            parts.append(b"]}")
        return b"".join(parts), [t.trial_id for t in page]


_MISSING = object()
