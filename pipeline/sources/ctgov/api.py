"""ClinicalTrials.gov API v2: watched NCT IDs fetched in batches.

``GET /studies?filter.ids=A,B,...&pageSize=1000`` returns many studies per request, so
a watchlist of 500 trials costs a handful of requests, not 500.  Pages are followed
with ``pageToken`` (every other parameter unchanged).  When every page of a batch
arrived, a requested ID the registry did not return is *missing*: a change users
must see.  When a page failed, the IDs not yet returned are *failed*, never missing.

Query watches (:mod:`pipeline.mirror`, through :data:`pipeline.sources.ctgov.QUERIES`)
use :func:`fetch_query_pages` (a whole search, page by page, or only what changed
since a date with :func:`incremental_params`) and :func:`fetch_data_timestamp`;
history backfill (:mod:`pipeline.backfill`, through ``HISTORY``) uses
:func:`fetch_history_index` and :func:`fetch_history_version`.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import orjson

from pipeline.errors import FetchError, ParseError
from pipeline.sources.base import Fetched
from pipeline.sources.ctgov.parse import (
    SOURCE,
    parse_history_index,
    parse_history_version,
    parse_studies_page,
    study_nct_ids,
)

if TYPE_CHECKING:  # pragma: no cover  (the client is handed in: no import of the HTTP layer)
    from pipeline.http_client import RegistryClient, Response


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


# --------------------------------------------------------------------------------------
# Query watches: whole result sets, incremental windows, ID sweeps, the data timestamp
# --------------------------------------------------------------------------------------


@dataclass
class StudiesPage:
    """One ``/studies`` page as it arrived: its studies, the total (first page), its size."""

    studies: list[dict]
    total: int | None
    nbytes: int


def incremental_params(params: dict[str, str], since: str) -> dict[str, str]:
    """``params`` restricted to studies whose LastUpdatePostDate is on or after ``since``."""
    out = dict(params)
    window = f"AREA[LastUpdatePostDate]RANGE[{since},MAX]"
    existing = out.get("filter.advanced")
    out["filter.advanced"] = f"({existing}) AND {window}" if existing else window
    return out


_TOKEN_RE = re.compile(rb'"nextPageToken"\s*:\s*"([^"\\]*)"')


def peek_page_token(body: bytes) -> str | None:
    """The ``nextPageToken`` of a ``/studies`` body without parsing it (a guess: verified later).

    The API writes the token after the studies, so the tail is searched first.
    """
    m = _TOKEN_RE.search(body, max(0, len(body) - 4096))
    if m is None:
        matches = list(_TOKEN_RE.finditer(body)) if b'"nextPageToken"' in body else []
        m = matches[-1] if matches else None
    return m.group(1).decode("ascii", "replace") if m else None


def fetch_query_pages(
    client: RegistryClient,
    params: dict[str, str],
    *,
    fields: str | None = None,
    count_total: bool = True,
    max_pages: int = 100_000,
    prefetch: bool = True,
) -> Iterator[StudiesPage]:
    """Yield the pages of a ``/studies`` search as they arrive (``pageToken`` paging).

    Nothing is accumulated: the caller processes a page and lets it go, so memory
    stays flat however many studies match.  With ``prefetch``, the next page's bytes
    are downloaded (under the same rate limit) while the caller works on this one;
    its token is read from the raw bytes and checked against the parsed page, and a
    wrong guess is simply fetched again.  A page that cannot be fetched or read
    raises FetchError / ParseError (the caller decides what an incomplete sync means).
    """
    url = client.source.base_url + "/studies"
    base = dict(params)
    base["pageSize"] = str(min(client.source.page_size, 1000))
    base["format"] = "json"
    if fields:
        base["fields"] = fields
    if count_total:
        base["countTotal"] = "true"

    def get(token: str | None) -> Response:
        page_params = dict(base)
        if token:
            page_params["pageToken"] = token
        response = client.get(url, page_params)
        if response.status == 404:
            raise FetchError(
                f"HTTP 404 from {response.url} (is sources.ctgov.base_url right?)", url=response.url, status=404
            )
        return response

    ahead = _Prefetcher(get) if prefetch else None
    token: str | None = None
    try:
        for _ in range(max_pages):
            response = ahead.take(token) if ahead else get(token)
            if ahead:
                guess = peek_page_token(response.body)
                if guess:
                    ahead.start(guess)  # the next page downloads while this one is parsed and processed
            studies, token, total = parse_studies_page(response.body)
            page = StudiesPage(studies, total, len(response.body))
            del studies, response  # only the consumer holds the page: it can let it go
            yield page
            del page
            if not token:
                return
        raise FetchError(f"more than {max_pages} pages from {url}: giving up", url=url)
    finally:
        if ahead:
            ahead.close()


class _Prefetcher:
    """Downloads one page ahead in a background thread (bytes only; parsing stays with the caller)."""

    def __init__(self, get):
        self._get = get
        self._thread: threading.Thread | None = None
        self._token: str | None = None
        self._result: tuple[Response | None, BaseException | None] = (None, None)

    def start(self, token: str) -> None:
        self.close()
        self._token = token

        def run() -> None:
            try:
                self._result = (self._get(token), None)
            except BaseException as exc:  # handed to the caller by take()
                self._result = (None, exc)

        self._result = (None, None)
        self._thread = threading.Thread(target=run, name="ctgov-prefetch", daemon=True)
        self._thread.start()

    def take(self, token: str | None) -> Response:
        """The page for ``token``: the prefetched one, or fetched now."""
        if self._thread is not None and token is not None and token == self._token:
            self._thread.join()
            self._thread = None
            response, error = self._result
            self._result = (None, None)
            if error is not None:
                raise error
            assert response is not None
            return response
        self.close()
        return self._get(token)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._result = (None, None)


def fetch_data_timestamp(client: RegistryClient) -> str | None:
    """``dataTimestamp`` of ``GET /version``: it moves only when the registry's data did."""
    response = client.get(client.source.base_url + "/version")
    if response.status != 200:
        raise FetchError(f"HTTP {response.status} from {response.url}", url=response.url, status=response.status)
    try:
        data = orjson.loads(response.body)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"ClinicalTrials.gov /version: invalid JSON ({exc})") from None
    value = data.get("dataTimestamp") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value.strip() else None


# --------------------------------------------------------------------------------------
# Record history (undocumented /api/int endpoints, see shared/REGISTRIES.md)
# --------------------------------------------------------------------------------------


def internal_api_url(base_url: str) -> str:
    """``.../api/v2`` -> ``.../api/int`` (the history endpoints live beside API v2)."""
    base = base_url.rstrip("/")
    if base.endswith("/api/v2"):
        return base[: -len("/v2")] + "/int"
    if base.endswith("/v2"):
        return base[: -len("/v2")] + "/int"
    return base + "/../int"


def fetch_history_index(client: RegistryClient, trial_id: str) -> list[dict] | None:
    """The versions of a study (``?history=true``); None when the registry has no such study."""
    url = f"{internal_api_url(client.source.base_url)}/studies/{trial_id}"
    response = client.get(url, {"history": "true"}, trial_id=trial_id)
    if response.status == 404:
        return None
    return parse_history_index(response.body)


def fetch_history_version(client: RegistryClient, trial_id: str, version: int) -> tuple[dict, bytes] | None:
    """The study as it stood at ``version`` (entities unescaped) and the raw body."""
    url = f"{internal_api_url(client.source.base_url)}/studies/{trial_id}/history/{version}"
    response = client.get(url, trial_id=trial_id)
    if response.status == 404:
        return None
    got, study = parse_history_version(response.body)
    if got != version:
        raise ParseError(f"asked {trial_id} version {version}, got version {got}")
    return study, response.body
