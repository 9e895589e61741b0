"""From a raw document to a normalized record, for either source (pure).

The one place that knows which parser reads which source's documents, so the
refresh, ``trialwatch extract``, re-reading stored raw payloads and the importers
all agree.  ``PARSER_VERSION`` goes up whenever a change to a parser changes what
it extracts: snapshots remember the version that made them, and an old snapshot is
re-read from its raw payload with the current parser before it is diffed, so a
parser upgrade never shows up as a change in the trial.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from pipeline.errors import ParseError
from pipeline.parse_ctgov import normalize_study, parse_history_version, parse_study
from pipeline.parse_who import parse_trial_page
from pipeline.record import Record

PARSER_VERSION: dict[str, int] = {"ctgov": 1, "who": 1}


def normalize_payload(source: str, trial_id: str, payload: Any) -> Record | None:
    """The normalized record of a fetched payload; None means "registry has no such trial".

    ``payload`` is a study dict (ctgov, from a batch page) or the page bytes (who).
    Raises ParseError / BlockedPageError for documents that cannot be trusted.
    """
    if source == "ctgov":
        study = payload if isinstance(payload, dict) else parse_study(payload)
        record = normalize_study(study)
        return record
    if source == "who":
        record = parse_trial_page(payload, trial_id)
        if record is not None and not same_trial(record.get("trial_id"), trial_id):
            # A portal mix-up (a cache serving another trial's page) would otherwise
            # rewrite this trial's record field by field with the other trial's content.
            raise ParseError(
                f"WHO page for {trial_id} shows another trial ({record.get('trial_id')!r}); not recorded"
            )
        return record
    raise ValueError(f"unknown source {source!r}")


def _id_key(value: str) -> str:
    return re.sub(r"[^0-9a-z]", "", value.lower())


def same_trial(shown: str | None, requested: str) -> bool:
    """Whether the ID a page shows is the requested one, leniently: case, punctuation and a
    registry's suffix (EU-CTR's country code) may differ; a page with no ID is judged elsewhere."""
    if not shown or not requested:
        return True
    a, b = _id_key(shown), _id_key(requested)
    longer, shorter = (a, b) if len(a) >= len(b) else (b, a)
    return longer.startswith(shorter) and (longer == shorter or longer[len(shorter):].isalpha())


def raw_bytes(source: str, payload: Any) -> bytes:
    """The raw payload to keep beside a snapshot."""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogatepass")
    return orjson.dumps(payload)


def reparse_raw(source: str, trial_id: str, raw: bytes | None, raw_format: str | None) -> Record | None:
    """Re-read a stored raw payload with the current parser (None if it cannot be)."""
    if raw is None:
        return None
    try:
        if source == "ctgov" and raw_format == "history":  # a backfilled history version
            return normalize_study(parse_history_version(raw)[1])
        if source == "ctgov":
            return normalize_study(parse_study(raw))
        if source == "who" and raw_format in ("csv", "xml"):  # a row of an ICTRP export file
            from pipeline.parse_ictrp_export import parse_export_csv, parse_export_xml

            parse = parse_export_csv if raw_format == "csv" else parse_export_xml
            return next(iter(parse(raw)), None)
        if source == "who" and raw_format == "html":
            return parse_trial_page(raw, trial_id)
    except (ParseError, Exception):  # an old payload the new parser rejects: keep the stored record
        return None
    return None
