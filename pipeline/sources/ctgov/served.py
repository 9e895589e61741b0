"""A ``/studies`` page split into its studies: the part the normalizer reads, and the bytes as served (pure).

A page of 1,000 real studies is ~48 MB of JSON, and about half of it is
``resultsSection`` (and some ``derivedSection``), which :func:`normalize_study
<pipeline.sources.ctgov.parse.normalize_study>` never reads.  Building Python objects for
all of it, and then serializing each study again to keep its raw payload, was most of a
first load's parsing time.  msgspec instead splits the page into each study's exact bytes
(:class:`msgspec.Raw`, no objects built) and decodes of each study only the members in
:data:`NORMALIZED_MEMBERS`, skipping the rest at C speed; the raw payload kept beside a
snapshot is then the study exactly as the API served it.

The members skipped are still checked for JSON syntax, though not for valid UTF-8
inside their strings: a stray byte in one study's results no longer fails the
thousand studies of its page, and, kept as served, that raw payload is one
:meth:`reparse <pipeline.sources.ctgov.ClinicalTrialsGov.reparse>` declines (the stored
record stays).

Only well-formed pages take this path.  Anything msgspec refuses (not JSON, no
``studies`` list, a study that is not an object, a byte-order mark...) returns None,
and the caller reads the page the thorough way, which says precisely what is wrong.
"""

from __future__ import annotations

from typing import Any

import msgspec

#: The members of a study that :func:`~pipeline.sources.ctgov.parse.normalize_study` and the
#: paging code read (a test holds normalize_study to this list on every real fixture).
NORMALIZED_MEMBERS = ("protocolSection", "hasResults")


class ServedStudy(dict):
    """A study's :data:`NORMALIZED_MEMBERS` as a dict, with ``raw``: the study's bytes as served.

    ``raw`` is a view into the page (no copy while the page is planned); ``bytes(raw)``
    is the payload.
    """

    __slots__ = ("raw",)

    def __init__(self, members: dict[str, Any], raw: msgspec.Raw):
        super().__init__(members)
        self.raw = raw


class _Page(msgspec.Struct):
    studies: list[msgspec.Raw]
    nextPageToken: Any = None
    totalCount: Any = None


class _Study(msgspec.Struct):
    protocolSection: Any = msgspec.UNSET
    hasResults: Any = msgspec.UNSET


_PAGE = msgspec.json.Decoder(_Page)
_STUDY = msgspec.json.Decoder(_Study)


def split_studies_page(body: bytes) -> tuple[list[ServedStudy], Any, Any] | None:
    """(studies, nextPageToken, totalCount) as found, or None when the page is not plainly well-formed.

    The token and count are returned as they are in the page; the caller checks their types.
    """
    if not isinstance(body, bytes):
        return None
    try:
        page = _PAGE.decode(body)
        studies = []
        for raw in page.studies:
            study = _STUDY.decode(raw)
            members = {}
            if study.protocolSection is not msgspec.UNSET:
                members["protocolSection"] = study.protocolSection
            if study.hasResults is not msgspec.UNSET:
                members["hasResults"] = study.hasResults
            studies.append(ServedStudy(members, raw))
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # nested too deep: read whole, it says so
        return None
    return studies, page.nextPageToken, page.totalCount
