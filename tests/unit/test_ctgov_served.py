"""A /studies page split by msgspec (pipeline.sources.ctgov.served) reads as the whole page would.

The fast path decodes of each study only NORMALIZED_MEMBERS and keeps its bytes as
served.  These tests hold it to that on every real fixture: normalize_study reads no
other member, a split study normalizes exactly like the whole one, its raw payload is
its bytes in the page, and pages the fast path refuses are read the thorough way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.errors import ParseError
from pipeline.sources.ctgov import SOURCE as CTGOV
from pipeline.sources.ctgov.parse import normalize_study, parse_studies_page, parse_study
from pipeline.sources.ctgov.served import NORMALIZED_MEMBERS, ServedStudy, split_studies_page


class _Reads(dict):
    """A study that notes which of its members are read (any iteration counts as all)."""

    def __init__(self, study: dict, seen: set[str]):
        super().__init__(study)
        self.seen = seen

    def __getitem__(self, key: str) -> Any:
        self.seen.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.seen.add(str(key))
        return super().__contains__(key)

    def __iter__(self):
        self.seen.add("<every member>")
        return super().__iter__()

    def keys(self):
        self.seen.add("<every member>")
        return super().keys()

    def items(self):
        self.seen.add("<every member>")
        return super().items()

    def values(self):
        self.seen.add("<every member>")
        return super().values()


def _fixture_studies(fixtures_dir: Path) -> list[tuple[str, bytes]]:
    """(name, the study's bytes) for every ClinicalTrials.gov v2 study among the fixtures."""
    v2 = fixtures_dir / "ctgov" / "v2"
    out = [(p.name, p.read_bytes().strip()) for p in sorted(v2.glob("*.json"))]
    for page in sorted((v2 / "lists").glob("*.json")):
        for i, study in enumerate(orjson.loads(page.read_bytes())["studies"]):
            out.append((f"{page.name}[{i}]", orjson.dumps(study)))
    assert len(out) >= 20
    return out


def test_normalize_study_reads_no_member_the_fast_path_leaves_out(fixtures_dir: Path) -> None:
    seen: set[str] = set()
    for _name, body in _fixture_studies(fixtures_dir):
        normalize_study(_Reads(parse_study(body), seen))
    assert "protocolSection" in seen
    assert seen <= set(NORMALIZED_MEMBERS), f"normalize_study now reads {sorted(seen - set(NORMALIZED_MEMBERS))}"


def test_every_fixture_study_split_from_a_page_normalizes_as_the_whole_and_keeps_its_bytes(fixtures_dir: Path) -> None:
    studies = _fixture_studies(fixtures_dir)
    # pretty-printed between the studies, compact or indented inside: the slices are exact
    page = b'{"studies": [\n  ' + b",\n  ".join(body for _name, body in studies) + b'\n],\n "nextPageToken": "NF0g5J", "totalCount": 438897}'
    split = split_studies_page(page)
    assert split is not None
    served, token, total = split
    assert (token, total) == ("NF0g5J", 438897)
    assert len(served) == len(studies)
    for (name, body), study in zip(studies, served):
        assert isinstance(study, ServedStudy), name
        assert set(study) <= set(NORMALIZED_MEMBERS), name
        assert bytes(study.raw) == body, name
        assert CTGOV.raw_bytes(study) == body, name
        whole = parse_study(body)
        assert normalize_study(study) == normalize_study(whole), name
        assert orjson.loads(CTGOV.raw_bytes(study)) == whole, name
    assert parse_studies_page(page) == (served, "NF0g5J", 438897)


def test_the_real_list_pages_take_the_fast_path(fixtures_dir: Path) -> None:
    for path in sorted((fixtures_dir / "ctgov" / "v2" / "lists").glob("*.json")):
        body = path.read_bytes()
        studies, token, total = parse_studies_page(body)
        whole = orjson.loads(body)
        assert all(isinstance(s, ServedStudy) for s in studies), path.name
        assert [orjson.loads(bytes(s.raw)) for s in studies] == whole["studies"], path.name
        assert [normalize_study(s) for s in studies] == [normalize_study(s) for s in whole["studies"]]
        assert token == whole.get("nextPageToken")


def test_pages_the_fast_path_refuses_are_read_whole_with_the_same_result() -> None:
    study = {"protocolSection": {"identificationModule": {"nctId": "NCT01234567", "briefTitle": "A"}},
             "derivedSection": {"miscInfoModule": {"versionHolder": "2025-06-13"}}, "hasResults": False}
    page = orjson.dumps({"studies": [study], "nextPageToken": "abc"})
    fast = parse_studies_page(page)
    assert isinstance(fast[0][0], ServedStudy)
    for odd in (b"\xef\xbb\xbf" + page, page.decode()):  # a byte-order mark; text, not bytes
        assert split_studies_page(odd) is None
        studies, token, total = parse_studies_page(odd)
        assert studies == [study] and token == "abc" and total is None
        assert normalize_study(studies[0]) == normalize_study(fast[0][0])
        assert CTGOV.raw_bytes(studies[0]) == orjson.dumps(study)
    # odd token and count values are dropped on both paths alike
    for body in (b'{"studies": [], "nextPageToken": "  ", "totalCount": true}',
                 b'{"studies": [], "nextPageToken": 7, "totalCount": "12"}'):
        assert parse_studies_page(body) == ([], None, None)
        assert parse_studies_page(body.decode()) == ([], None, None)


@pytest.mark.parametrize("body", [
    b'{"studies": [1]}', b'{"studies": [{"protocolSection": {}}, "x"]}', b'{"studies": {}}', b"{}", b"[]",
    b'{"studies": [{"protocolSection": {"a": 1}}', b'{"studies": [{"hasResults": tru}]}',
    b'{"studies": [{"resultsSection": {"a": [1, 2}}]}',  # broken inside a member the fast path skips
    b'{"studies": [' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"]}",  # nested too deep
    b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
])
def test_a_malformed_page_is_a_parse_error_whichever_part_is_broken(body: bytes) -> None:
    assert split_studies_page(body) is None
    with pytest.raises(ParseError):
        parse_studies_page(body)


def test_a_stray_byte_in_a_member_nobody_reads_fails_only_that_payloads_reparse() -> None:
    body = (b'{"studies": [{"protocolSection": {"identificationModule": {"nctId": "NCT01234567"}},'
            b' "resultsSection": {"note": "caf\xe9"}}]}')
    (study,), _token, _total = parse_studies_page(body)
    assert normalize_study(study)["trial_id"] == "NCT01234567"
    raw = CTGOV.raw_bytes(study)
    assert raw == body[len(b'{"studies": ['):-2]  # kept as served
    assert CTGOV.reparse("NCT01234567", raw, "json") is None  # the stored record stays
    with pytest.raises(ParseError):  # where it is read, the byte is an error as before
        parse_studies_page(body.replace(b'"resultsSection": {"note": "caf\xe9"}', b'"hasResults": "caf\xe9"'))
