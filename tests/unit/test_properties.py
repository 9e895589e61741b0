"""Property-based tests (hypothesis) on the extractors and the diff.

The extractors meet arbitrary input and mangled real documents: they may return a
record (or None for the WHO not-found page) or raise ParseError / BlockedPageError,
and nothing else.  Whatever they return must be storable: JSON-serializable, hashable
by :func:`pipeline.diff.content_hash`, with the record shape's keys.

The diff is checked on real records (every ClinicalTrials.gov fixture and the WHO
page) mutated field by field: diff(a, a) is empty, applying the recorded changes to
the old record gives the new one, also after the changes went through the store's
JSON round trip, and "hash equal" agrees with "diff empty".

``tests/unit/test_diff.py`` has the same two diff properties on small synthetic records;
these extend them to real record shapes and to the stored form of the changes.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.diff import apply_changes, content_hash, diff_records, records_equivalent
from pipeline.errors import BlockedPageError, ParseError
from pipeline.sources.ctgov.parse import normalize_study, parse_history_version, parse_studies_page, parse_study
from pipeline.sources.who.page import parse_target_size, parse_trial_page
from pipeline.record import COMMON_FIELDS
from pipeline.codec import dumps, loads

from conftest import fixtures_root

ROOT = fixtures_root()
needs_fixtures = pytest.mark.skipif(ROOT is None, reason="real registry fixtures not found (../shared/fixtures)")

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _load_fixtures():
    if ROOT is None:
        return [], b"", b""
    studies = [orjson.loads(p.read_bytes()) for p in sorted((ROOT / "ctgov/v2").glob("NCT*.json"))]
    who_page = (ROOT / "who/html/ChiCTR2100045397.html").read_bytes()
    not_found = (ROOT / "who/html/not_found__ChiCTR-2100045397.html").read_bytes()
    return studies, who_page, not_found


STUDIES, WHO_PAGE, WHO_NOT_FOUND = _load_fixtures()


def assert_storable(record, source):
    """What every extractor output must be for the store and the diff to take it."""
    assert isinstance(record, dict)
    for key in COMMON_FIELDS:
        assert key in record, key
    assert record["source"] == source
    text = dumps(record)  # orjson: raises on ints past 64 bits, non-str keys, ...
    assert loads(text) == json.loads(text)
    content_hash(record)
    assert diff_records(record, record) == []


def _check_json_value(value, depth=0):
    assert depth < 50, "normalized record nested too deeply"
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str)
            _check_json_value(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_json_value(v, depth + 1)
    else:
        assert value is None or isinstance(value, (str, int, float, bool)), type(value)


# -- strategies ---------------------------------------------------------------------------

nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from([
        "<script>alert(1)</script>", "'; DROP TABLE trials;--", "\x00\x01\x1b[31m", "&amp;&#0;&#xD800;&#x110000;",
        "\ud800", "\ufeff", "\u202e", " " * 3000, "1,000,000,000,000,000,000,000", "99999999999999999999999",
        "<br><br/>", "Recruiting", "2020-02-30", "0000-00-00", "Patients:79;Controls:", "NaN", "-1", "1e400",
    ]),
)
# what a JSON document can hold once decoded: no lone surrogates (orjson rejects them)
json_text = nasty_text.filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t))
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False), json_text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(json_text, children, max_size=4),
    max_leaves=12,
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _set(value, path, new):
    for step in path[:-1]:
        value = value[step]
    if new is _DELETE:
        del value[path[-1]]
    else:
        value[path[-1]] = new


_DELETE = object()


@st.composite
def mangled_studies(draw):
    """A real study with a few of its values replaced, deleted or re-typed."""
    study = copy.deepcopy(draw(st.sampled_from(STUDIES)))
    paths = [p for p in _paths(study) if p]
    for _ in range(draw(st.integers(1, 6))):
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        try:
            _set(study, path, draw(st.one_of(st.just(_DELETE), json_values)))
        except (KeyError, IndexError, TypeError):
            continue
        paths = [p for p in _paths(study) if p]
    return study


_LABEL_RE = re.compile(rb'(<span id="DataList\d+_ctl\d+_[A-Za-z_0-9]+"[^>]*>)(.*?)(</span>)', re.S)


@st.composite
def mangled_who_pages(draw):
    """The real WHO page with some field texts replaced and some bytes cut or inserted."""
    page = draw(st.sampled_from([WHO_PAGE, WHO_NOT_FOUND]))
    spans = list(_LABEL_RE.finditer(page))
    out = bytearray(page)
    if spans:
        for m in sorted(draw(st.lists(st.sampled_from(spans), max_size=5, unique_by=lambda m: m.start())),
                        key=lambda m: -m.start()):
            text = draw(nasty_text).encode("utf-8", "surrogatepass")
            out[m.start(2):m.end(2)] = text
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["cut", "insert", "truncate", "bad_utf8"]))
        pos = draw(st.integers(0, len(out)))
        if op == "cut":
            del out[pos:pos + draw(st.integers(1, 2000))]
        elif op == "insert":
            out[pos:pos] = draw(st.one_of(st.binary(max_size=50), nasty_text.map(lambda t: t.encode("utf-8", "surrogatepass"))))
        elif op == "truncate":
            del out[pos:]
        else:
            out[pos:pos] = b"\xff\xfe\xc3(\xed\xa0\x80"
    return bytes(out)


# -- extractors: no exception beyond ParseError / BlockedPageError -------------------------


@settings(max_examples=300, **SETTINGS)
@given(st.binary(max_size=3000))
def test_who_parser_on_arbitrary_bytes(body):
    try:
        record = parse_trial_page(body, "ChiCTR2100045397")
    except (ParseError, BlockedPageError):
        return
    if record is not None:
        assert_storable(record, "who")


@settings(max_examples=200, **SETTINGS)
@given(st.text(max_size=2000))
def test_who_parser_on_arbitrary_text(body):
    try:
        record = parse_trial_page(body, "NCT04252118")
    except (ParseError, BlockedPageError):
        return
    if record is not None:
        assert_storable(record, "who")


@needs_fixtures
@settings(max_examples=400, **SETTINGS)
@given(mangled_who_pages())
def test_who_parser_on_mangled_real_pages(body):
    try:
        record = parse_trial_page(body, "ChiCTR2100045397")
    except (ParseError, BlockedPageError):
        return
    if record is not None:
        assert_storable(record, "who")
        _check_json_value(record)


@settings(max_examples=300, **SETTINGS)
@given(st.one_of(st.binary(max_size=2000), json_values.map(lambda v: json.dumps(v).encode())))
def test_ctgov_document_parsers_on_arbitrary_input(body):
    for parse in (parse_study, parse_studies_page, parse_history_version):
        try:
            parsed = parse(body)
        except ParseError:
            continue
        if parse is parse_study:
            try:
                assert_storable(normalize_study(parsed), "ctgov")
            except ParseError:
                pass


@settings(max_examples=300, **SETTINGS)
@given(st.dictionaries(json_text, json_values, max_size=5), json_values)
def test_ctgov_normalizer_on_arbitrary_structures(top, ident_extra):
    study = {"protocolSection": {"identificationModule": {"nctId": "NCT01234567", "x": ident_extra}, **top}, **top}
    try:
        record = normalize_study(study)
    except ParseError:
        return
    assert_storable(record, "ctgov")
    _check_json_value(record)


@needs_fixtures
@settings(max_examples=400, **SETTINGS)
@given(mangled_studies())
def test_ctgov_normalizer_on_mangled_real_studies(study):
    try:
        record = normalize_study(study)
    except ParseError:
        return
    assert_storable(record, "ctgov")
    _check_json_value(record)
    # the same study as the bytes of a /studies page
    studies, _, _ = parse_studies_page(orjson.dumps({"studies": [study]}))
    assert len(studies) == 1


@settings(max_examples=300, **SETTINGS)
@given(st.one_of(nasty_text, st.from_regex(r"[0-9,;: a-z]{0,60}", fullmatch=True),
                 st.lists(st.integers(0, 10**12).map(lambda n: f"{n:,}"), max_size=4).map(";".join)))
def test_who_target_size_is_a_storable_int(text):
    size = parse_target_size(text)
    assert size is None or (isinstance(size, int) and 0 <= size < 2**63)


# -- the diff on real record shapes -----------------------------------------------------------


def _real_records():
    out = []
    for study in STUDIES:
        out.append(normalize_study(study))
    if WHO_PAGE:
        out.append(parse_trial_page(WHO_PAGE, "ChiCTR2100045397"))
    return out


REAL_RECORDS = _real_records()


@st.composite
def edited_pairs(draw):
    """(old, new): a real record and the same record with some fields edited."""
    old = copy.deepcopy(draw(st.sampled_from(REAL_RECORDS)))
    new = copy.deepcopy(old)
    fields = [k for k in old if k not in ("trial_id", "source")]
    for field in draw(st.lists(st.sampled_from(fields), max_size=6, unique=True)):
        current = old[field]
        if isinstance(current, list) and current and draw(st.booleans()):
            items = list(current)
            action = draw(st.sampled_from(["drop", "add", "shuffle", "pad"]))
            if action == "drop":
                items.pop(draw(st.integers(0, len(items) - 1)))
            elif action == "add":
                items.append(draw(json_text))
            elif action == "shuffle":
                items = draw(st.permutations(items))
            else:
                items = [f"  {i}\n" if isinstance(i, str) else i for i in items]
            new[field] = items
        else:
            new[field] = draw(st.one_of(st.none(), json_text, st.integers(0, 10**6), st.booleans(),
                                        st.lists(json_text, max_size=4)))
    if draw(st.booleans()):  # fields only in one of them
        new[draw(st.sampled_from(["extra_field", "why_stopped", "results_summary"]))] = draw(json_text)
    return old, new


@needs_fixtures
@settings(max_examples=300, **SETTINGS)
@given(st.sampled_from(REAL_RECORDS or [{}]))
def test_diff_of_a_real_record_with_itself_is_empty(record):
    assert diff_records(record, record) == []
    assert diff_records(record, copy.deepcopy(record)) == []
    assert diff_records(record, loads(dumps(record))) == []  # the stored form


@needs_fixtures
@settings(max_examples=500, **SETTINGS)
@given(edited_pairs())
def test_applying_recorded_changes_rebuilds_the_new_record(pair):
    old, new = pair
    changes = diff_records(old, new)
    assert records_equivalent(apply_changes(old, changes), new)
    assert (changes == []) == (content_hash(old) == content_hash(new))
    # the changes as the store writes and reads them (JSON columns)
    stored = [{**c, "old": loads(dumps(c["old"])), "new": loads(dumps(c["new"]))} for c in changes]
    assert records_equivalent(apply_changes(loads(dumps(old)), stored), new)
    # and the other way round: the reverse changes rebuild the old record
    assert records_equivalent(apply_changes(new, diff_records(new, old)), old)
    for c in changes:
        assert c["kind"] in ("field", "detail") and c["field"] not in ("trial_id", "source", "last_updated", "last_refreshed")
        if isinstance(c["old"], list) or isinstance(c["new"], list):
            assert isinstance(c["added"], list) and isinstance(c["removed"], list)


@needs_fixtures
def test_real_version_pair_round_trip():
    """Two real versions of one study (a real edit), through diff and apply."""
    a, b = (normalize_study(orjson.loads(p.read_bytes())) for p in sorted((ROOT / "ctgov/v2/versions").glob("*.json")))
    changes = diff_records(a, b)
    assert records_equivalent(apply_changes(a, changes), b)
