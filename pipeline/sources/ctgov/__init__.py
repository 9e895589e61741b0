"""ClinicalTrials.gov (API v2): everything trialwatch knows about this registry.

* :mod:`.api`: the I/O (ID batches, query pages, ``/version``, record history);
* :mod:`.parse`: the pure reading of its JSON into normalized records.

:data:`SOURCE` is this registry's entry in :data:`pipeline.sources.SOURCES`.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence
from urllib.parse import quote

import orjson

from pipeline.record import CTGOV_EXTRA_FIELDS, Record
from pipeline.sources.base import COMMON_DEFAULTS, Fetched, raw_bytes
from pipeline.sources.ctgov import api
from pipeline.sources.ctgov.parse import (
    SOURCE as NAME,
    normalize_study,
    parse_history_version,
    parse_studies_page,
    parse_study,
    study_nct_ids,
    study_status,
)
from pipeline.trial_ids import is_nct

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.http_client import RegistryClient

#: raw_format of a stored history version body ({"studyVersion": v, "study": {...}}).
HISTORY_FORMAT = "history"

#: What query watches (:mod:`pipeline.mirror`) use of this registry.
QUERIES = SimpleNamespace(
    fetch_pages=api.fetch_query_pages,
    fetch_by_ids=api.fetch_by_ids,
    fetch_data_timestamp=api.fetch_data_timestamp,
    incremental_params=api.incremental_params,
    study_ids=study_nct_ids,
    study_status=study_status,
    status_param="filter.overallStatus",
    sweep_fields="NCTId",
)

#: What history backfill (:mod:`pipeline.backfill`) uses of this registry.
HISTORY = SimpleNamespace(
    fetch_index=api.fetch_history_index,
    fetch_version=api.fetch_history_version,
    normalize=normalize_study,
    raw_format=HISTORY_FORMAT,
)


class ClinicalTrialsGov:
    """The :class:`pipeline.sources.base.Source` of ClinicalTrials.gov."""

    name = NAME
    label = "ClinicalTrials.gov"
    parser_version = 1
    defaults = {
        **COMMON_DEFAULTS,
        "base_url": "https://clinicaltrials.gov/api/v2",
        "requests_per_second": 1.0,
        "retries": 4,
        "page_size": 1000,
        "ids_per_request": 200,
        "max_response_mb": 64.0,
        "full_sweep_days": 7,
    }
    # ClinicalTrials.gov refreshes its data on weekday mornings (US Eastern).
    schedule = "0 14 * * 1-5"
    extra_fields = CTGOV_EXTRA_FIELDS
    queries = QUERIES
    history = HISTORY
    # FDAAA 801: results of applicable trials are due 12 months after primary completion
    results_due = True
    copies_others = False
    updated_field = "last_updated"
    updated_word = "last updated"
    live_formats = ("json",)

    def watches(self, trial_id: str) -> bool:
        return is_nct(trial_id)

    def registry_url(self, trial_id: str) -> str:
        return f"https://clinicaltrials.gov/study/{quote(trial_id, safe='')}"

    def fetch(
        self, client: RegistryClient, trial_ids: Iterable[str], *, should_stop: Callable[[], bool] = lambda: False
    ) -> Iterator[Fetched]:
        return api.fetch_by_ids(client, trial_ids, should_stop=should_stop)

    def normalize(self, trial_id: str, payload: Any) -> Record | None:
        study = payload if isinstance(payload, dict) else parse_study(payload)
        return normalize_study(study)

    def reparse(self, trial_id: str, raw: bytes | None, raw_format: str | None) -> Record | None:
        if raw is None:
            return None
        try:
            if raw_format == HISTORY_FORMAT:  # a backfilled history version
                return normalize_study(parse_history_version(raw)[1])
            return normalize_study(parse_study(raw))
        except Exception:  # an old payload the new parser rejects: keep the stored record
            return None

    def raw_bytes(self, payload: Any) -> bytes:
        # a study from a /studies page is kept exactly as served (not re-serialized)
        served = getattr(payload, "raw", None)
        return bytes(served) if served is not None else raw_bytes(payload)

    def extract(self, body: bytes, trial_id: str | None) -> Any:
        """A study, a ``/studies`` page (every study) or a history version, normalized."""
        try:
            top = orjson.loads(body)
        except orjson.JSONDecodeError:
            top = None
        if isinstance(top, dict) and "studies" in top:
            studies, _token, _total = parse_studies_page(body)
            return [normalize_study(s) for s in studies]
        if isinstance(top, dict) and "studyVersion" in top:
            _version, study = parse_history_version(body)
            return normalize_study(study)
        return normalize_study(parse_study(body))

    def check(self, client: RegistryClient, trial_ids: Sequence[str]) -> str:
        """``GET /version``: the API's version and the date of its data."""
        data = api.fetch_version(client)
        return f"API {data.get('apiVersion')}, data of {data.get('dataTimestamp') or 'unknown date'}"


SOURCE = ClinicalTrialsGov()
