"""ClinicalTrials.gov API v2: watched NCT IDs fetched in batches.

``GET /studies?filter.ids=A,B,...&pageSize=1000`` returns many studies per request, so
a watchlist of 500 trials costs a handful of requests, not 500.  Pages are followed
with ``pageToken`` (every other parameter unchanged).  When every page of a batch
arrived, a requested ID the registry did not return is *missing*: a change users
must see.  When a page failed, the IDs not yet returned are *failed*, never missing.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from pipeline.errors import FetchError, ParseError
from pipeline.http_client import RegistryClient
from pipeline.parse_ctgov import parse_studies_page
from pipeline.sources import Fetched

SOURCE = "ctgov"


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


def fetch_by_ids(
    client: RegistryClient, trial_ids: Iterable[str], *, should_stop: Callable[[], bool] = lambda: False
) -> Iterator[Fetched]:
    """Yield one :class:`Fetched` per requested NCT ID (no new batch once ``should_stop()``)."""
    ids = list(dict.fromkeys(trial_ids))
    per_request = max(1, client.source.ids_per_request)
    for start in range(0, len(ids), per_request):
        if should_stop():
            return
        yield from _fetch_batch(client, ids[start : start + per_request])


def _fetch_batch(client: RegistryClient, batch: list[str]) -> Iterator[Fetched]:
    wanted = set(batch)
    seen: set[str] = set()
    url = client.source.base_url + "/studies"
    params = {
        "filter.ids": ",".join(batch),
        "pageSize": str(min(client.source.page_size, 1000)),
        "format": "json",
    }
    token: str | None = None
    pages = 0
    while True:
        page_params = dict(params)
        if token:
            page_params["pageToken"] = token
        try:
            response = client.get(url, page_params)
            if response.status == 404:
                raise FetchError(f"HTTP 404 from {response.url} (is sources.ctgov.base_url right?)", url=response.url, status=404)
            studies, token, _total = parse_studies_page(response.body)
            unnamed = sum(1 for study in studies if not study_nct_ids(study))
            if unnamed:
                # Every study of a filter.ids answer has an NCT ID.  Without this check a
                # renamed key made every watched trial look deleted: a flood of false
                # "missing" changes instead of one parse error.
                raise ParseError(
                    f"ClinicalTrials.gov studies page: {unnamed} of {len(studies)} studies have no "
                    "protocolSection.identificationModule.nctId (API layout changed?)"
                )
        except (FetchError, ParseError) as exc:
            for trial_id in batch:
                if trial_id not in seen:
                    yield Fetched(trial_id, SOURCE, "failed", error=f"{type(exc).__name__}: {exc}")
            return
        pages += 1
        for study in studies:
            matched = [i for i in study_nct_ids(study) if i in wanted and i not in seen]
            for trial_id in matched:
                seen.add(trial_id)
                yield Fetched(trial_id, SOURCE, "found", payload=study, raw_format="json")
        if not token or pages > 10_000:
            break
    for trial_id in batch:
        if trial_id not in seen:
            yield Fetched(trial_id, SOURCE, "missing")
