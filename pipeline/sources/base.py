"""What every registry provides: the :class:`Source` interface and :class:`Fetched`.

A source's I/O yields :class:`Fetched` items: a raw document for a trial ("found"),
the registry's word that it has no such trial ("missing"), or the reason it could not
tell ("failed").  Parsing and normalizing are the source's pure methods
(:meth:`Source.normalize`, :meth:`Source.reparse`); planning and storing are the same
for every source (:mod:`pipeline.plan`, :mod:`pipeline.refresh`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

import orjson

from pipeline.plan import FetchStatus
from pipeline.record import Record

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.http_client import RegistryClient


@dataclass
class Fetched:
    """What one source said about one trial in this run."""

    trial_id: str
    source: str
    status: FetchStatus
    payload: Any = None         # ctgov: the study dict; who: the page bytes
    raw_format: str | None = None
    error: str | None = None


#: Settings every source has in ``[sources.<name>]`` unless it says otherwise.
COMMON_DEFAULTS: dict[str, Any] = {
    "concurrency": 1,
    "timeout": 30.0,
    "retries": 3,
    "user_agent": "trialwatch/0.1 (+https://github.com/trialwatch/trialwatch)",
    "enabled": True,
    "max_retry_wait": 120.0,
    "max_response_mb": 16.0,
    "run_budget": 3600.0,
}


class Source(Protocol):
    """One registry: where its settings start, which trials it watches, how it fetches and reads them.

    Optional capabilities are attributes that are None when a registry lacks them:
    ``queries`` (query watches: :mod:`pipeline.mirror`) and ``history`` (record history:
    :mod:`pipeline.backfill`).
    """

    name: str                       # the key in SOURCES, the config and the store ("ctgov")
    label: str                      # the registry's name for people ("ClinicalTrials.gov")
    parser_version: int             # goes up when the parser extracts differently
    defaults: Mapping[str, Any]     # [sources.<name>] settings and their defaults
    schedule: str                   # default cron expression of the daemon
    extra_fields: tuple[str, ...]   # record fields beyond COMMON_FIELDS (export columns)
    queries: Any                    # the query-watch API, or None
    history: Any                    # the record-history API, or None
    # What the trial view (pipeline.trial_events) needs to know of the registry:
    results_due: bool               # it records whether results are posted, and they are due
    copies_others: bool             # it republishes other registries' records (the WHO portal)
    updated_field: str              # the record field holding the copy's last-updated date
    updated_word: str               # how people say it ("last updated", "last refreshed")
    live_formats: tuple[str, ...]   # raw_format of what a refresh fetches (not an import or backfill)

    def watches(self, trial_id: str) -> bool:
        """Whether this registry can be asked about ``trial_id``."""

    def registry_url(self, trial_id: str) -> str:
        """The trial's public page on this registry."""

    def fetch(
        self, client: RegistryClient, trial_ids: Iterable[str], *, should_stop: Callable[[], bool]
    ) -> Iterator[Fetched]:
        """One Fetched per requested ID (I/O; no new request once ``should_stop()``)."""

    def normalize(self, trial_id: str, payload: Any) -> Record | None:
        """The normalized record of a fetched payload; None means "no such trial" (pure).

        Raises ParseError / BlockedPageError for documents that cannot be trusted.
        """

    def reparse(self, trial_id: str, raw: bytes | None, raw_format: str | None) -> Record | None:
        """A stored raw payload re-read with the current parser; None if it cannot be (pure)."""

    def raw_bytes(self, payload: Any) -> bytes:
        """The raw payload to keep beside a snapshot."""

    def extract(self, body: bytes, trial_id: str | None) -> Any:
        """``trialwatch extract``: a saved response as normalized JSON; None for a not-found page."""

    def check(self, client: RegistryClient, trial_ids: Sequence[str]) -> str:
        """``trialwatch check``: one cheap request showing the registry answers as expected (I/O).

        ``trial_ids`` are the watched trials it holds (a registry without an
        endpoint of its own may probe one of them).  Returns what it saw in a few
        words; raises FetchError / ParseError when the answer is not usable.
        """


def raw_bytes(payload: Any) -> bytes:
    """A payload as bytes: documents as they came, parsed JSON re-serialized."""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogatepass")
    return orjson.dumps(payload)
