"""WHO ICTRP search portal: one ``Trial2.aspx?TrialID=...`` page per trial.

The portal answers 200 for almost everything, so the status code decides little:
the page content is judged downstream by :func:`pipeline.sources.who.page.parse_trial_page`
(not-found page -> missing; access-denied, bot-check or error page -> failed).
Pages are fetched by a small thread pool (``concurrency``) under the source's rate
limit; results are yielded as they complete, to the single writer thread.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from queue import SimpleQueue
from typing import TYPE_CHECKING, Iterable, Iterator

from pipeline.errors import FetchError
from pipeline.sources.base import Fetched

if TYPE_CHECKING:  # pragma: no cover  (the client is handed in: no import of the HTTP layer)
    from pipeline.http_client import RegistryClient

SOURCE = "who"


def page_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/Trial2.aspx"


def fetch_page(client: RegistryClient, trial_id: str) -> Fetched:
    """Fetch one trial's portal page (raw bytes; judged by the parser)."""
    try:
        response = client.get(page_url(client.source.base_url), {"TrialID": trial_id}, trial_id=trial_id)
    except FetchError as exc:
        return Fetched(trial_id, SOURCE, "failed", error=f"{type(exc).__name__}: {exc}")
    if response.status == 404:
        return Fetched(
            trial_id, SOURCE, "failed", error=f"HTTP 404 from {response.url} (is sources.who.base_url right?)"
        )
    return Fetched(trial_id, SOURCE, "found", payload=response.body, raw_format="html")


def fetch_pages(client: RegistryClient, trial_ids: Iterable[str], *, should_stop=lambda: False) -> Iterator[Fetched]:
    """Yield a Fetched per trial, ``concurrency`` requests in flight at most."""
    ids = list(dict.fromkeys(trial_ids))
    workers = max(1, client.source.concurrency)
    if workers == 1:
        for trial_id in ids:
            if should_stop():
                return
            yield fetch_page(client, trial_id)
        return
    # Finished futures are handed over through a queue by their done-callbacks:
    # concurrent.futures.wait() would install and remove a waiter on every pending
    # future for each page (~5% of the fetch's CPU at 1,000 pages).
    finished: SimpleQueue[Future[Fetched]] = SimpleQueue()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="who-fetch") as pool:
        in_flight = 0
        queue = iter(ids)
        exhausted = False
        while True:
            while not exhausted and in_flight < workers * 2:
                if should_stop():
                    exhausted = True
                    break
                try:
                    future = pool.submit(fetch_page, client, next(queue))
                except StopIteration:
                    exhausted = True
                    break
                future.add_done_callback(finished.put)
                in_flight += 1
            if not in_flight:
                return
            future = finished.get()
            in_flight -= 1
            yield future.result()
