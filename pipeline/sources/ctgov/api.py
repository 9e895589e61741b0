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

from pipeline.errors import FetchError, ParseError, RequestAbandoned
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
    """Yield one :class:`Fetched` per requested NCT ID (no new batch, nor a batch's next
    page, once ``should_stop()``; refresh's ``should_stop`` includes the run budget, and
    the client itself starts no request once the budget is spent)."""
    ids = list(dict.fromkeys(trial_ids))
    per_request = max(1, client.source.ids_per_request)
    for start in range(0, len(ids), per_request):
        if should_stop():
            return
        yield from _fetch_batch(client, ids[start : start + per_request], should_stop)


#: Empty pages a batch may take beyond the pages its IDs need ("a page may be empty").
EXTRA_PAGES = 5


def _fetch_batch(
    client: RegistryClient, batch: list[str], should_stop: Callable[[], bool] = lambda: False
) -> Iterator[Fetched]:
    """One ``filter.ids`` request, its pages followed.  Every page is checked before any of
    its studies is believed: a study not asked for, a token seen before, a page that only
    repeats studies already answered or more pages than the batch can need make the IDs
    not yet answered fail for the run.  A stop (or the run budget spent) between pages
    abandons them (:class:`RequestAbandoned`: refresh defers them to the next run).
    Only when every page arrived is an ID the registry did not return *missing*."""
    wanted = set(batch)
    seen: set[str] = set()
    url = client.source.base_url + "/studies"
    page_size = min(client.source.page_size, 1000)
    params = {
        "filter.ids": ",".join(batch),
        "pageSize": str(page_size),
        "format": "json",
    }
    max_pages = -(-len(batch) // page_size) + EXTRA_PAGES
    tokens: set[str] = set()
    token: str | None = None
    pages = 0
    while True:
        page_params = dict(params)
        if token:
            page_params["pageToken"] = token
        try:
            if pages and should_stop():
                raise RequestAbandoned(
                    f"stopped after page {pages} of a filter.ids batch (run budget spent or stop requested)", url=url
                )
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
            named = [study_nct_ids(study) for study in studies]
            strangers = [ids[0] for ids in named if not wanted.intersection(ids)]
            if strangers:
                # An answer about another trial: the requested one is not "missing", and
                # the stranger was not asked for (the WHO side's "shows another trial").
                raise ParseError(
                    f"ClinicalTrials.gov answered filter.ids with {len(strangers)} studies not asked for "
                    f"({', '.join(strangers[:3])}): an answer about other trials"
                )
            if studies and not any(wanted.intersection(ids) - seen for ids in named):
                raise FetchError(
                    f"ClinicalTrials.gov repeated a page: page {pages + 1} holds only studies already "
                    "answered (pageToken ignored? a paging loop)"
                )
            if token is not None and token in tokens:
                raise FetchError(f"ClinicalTrials.gov sent nextPageToken {token[:40]!r} a second time: a paging loop")
            if token is not None:
                tokens.add(token)
            if token and pages + 1 >= max_pages:
                raise FetchError(
                    f"ClinicalTrials.gov still had a next page after {pages + 1} pages for {len(batch)} IDs "
                    f"(pageSize {page_size}): a paging loop"
                )
        except (FetchError, ParseError) as exc:
            for trial_id in batch:
                if trial_id not in seen:
                    yield Fetched(trial_id, SOURCE, "failed", error=f"{type(exc).__name__}: {exc}")
            return
        pages += 1
        for study, ids in zip(studies, named):
            matched = [i for i in ids if i in wanted and i not in seen]
            for trial_id in matched:
                seen.add(trial_id)
                yield Fetched(trial_id, SOURCE, "found", payload=study, raw_format="json")
        if not token:
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
    tokens: set[str] = set()
    pages_seen: set[int] = set()   # a hash of each page's IDs: a page served twice is a loop
    empty = 0                      # empty pages in a row that still had a next page
    try:
        for number in range(1, max_pages + 1):
            response = ahead.take(token) if ahead else get(token)
            if ahead:
                guess = peek_page_token(response.body)
                if guess and guess not in tokens:
                    ahead.start(guess)  # the next page downloads while this one is parsed and processed
            studies, token, total = parse_studies_page(response.body)
            if token is not None:
                if token in tokens:
                    raise FetchError(f"{url}: nextPageToken {token[:40]!r} came back on page {number}: a paging loop", url=url)
                tokens.add(token)
            if studies:
                fingerprint = hash(tuple(tuple(study_nct_ids(s)) for s in studies))
                if fingerprint in pages_seen:
                    raise FetchError(f"{url}: page {number} repeats an earlier page (pageToken ignored? a paging loop)", url=url)
                pages_seen.add(fingerprint)
                empty = 0
            elif token:
                empty += 1
                if empty > EXTRA_PAGES:
                    raise FetchError(f"{url}: {empty} empty pages in a row, each with a next page: a paging loop", url=url)
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


def fetch_version(client: RegistryClient) -> dict:
    """``GET /version``: ``{"apiVersion": ..., "dataTimestamp": ...}`` (FetchError / ParseError otherwise)."""
    response = client.get(client.source.base_url + "/version")
    if response.status != 200:
        hint = " (is sources.ctgov.base_url right?)" if response.status == 404 else ""
        raise FetchError(f"HTTP {response.status} from {response.url}{hint}", url=response.url, status=response.status)
    try:
        data = orjson.loads(response.body)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"ClinicalTrials.gov /version: invalid JSON ({exc})") from None
    if not isinstance(data, dict) or not data.get("apiVersion"):
        raise ParseError("ClinicalTrials.gov /version: no apiVersion in the answer (not the API v2?)")
    return data


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
    shown = study_nct_ids(study) if isinstance(study, dict) else []
    if shown and trial_id.upper() not in {i.upper() for i in shown}:
        raise ParseError(f"asked {trial_id} version {version}, got study {shown[0]}: an answer about another trial")
    return study, response.body
