"""The one HTTP layer: timeouts, per-source rate limits, retries, size caps.

Every request trialwatch sends goes through :class:`RegistryClient.get`, so the
politeness and retry policy live here and nowhere else:

* a per-source :class:`RateLimiter` spaces requests (``requests_per_second``);
* transport errors, timeouts, 408, 429 and 5xx raise :class:`TransientFetchError`
  and are retried by tenacity with exponential backoff and jitter, honouring
  ``Retry-After`` in both its forms (seconds, HTTP-date);
* a ``Retry-After`` longer than ``max_retry_wait``, or a wait that would pass the
  run's deadline, stops retrying at once: the run ends that trial cleanly and the
  next run picks it up;
* bodies are read in a stream and cut at ``max_response_bytes``
  (:class:`ResponseTooLarge`), and a body that trickles in slower than the overall
  deadline is abandoned;
* other 4xx are permanent :class:`FetchError`; a 404 is returned to the caller,
  for whom it means "missing".

Parsing never happens here, so a parse error can never be retried by accident.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import httpx
import tenacity

from pipeline.config import SourceConfig
from pipeline.errors import FetchError, ResponseTooLarge, TransientFetchError

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 403})


@dataclass
class Response:
    """A fully read response."""

    url: str
    status: int
    headers: httpx.Headers
    body: bytes
    attempts: int
    elapsed_ms: int


class RateLimiter:
    """Spaces calls at least ``1 / rate`` seconds apart, across threads."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        delay = slot - now
        if delay > 0:
            self._sleep(delay)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def build_http_client(timeout: float = 30.0) -> httpx.Client:
    """The shared httpx client (one per process; sources share its connection pool)."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        follow_redirects=True,
        headers={"Accept-Encoding": "gzip, deflate"},
    )


class RegistryClient:
    """Polite GETs against one registry, through the shared httpx client."""

    def __init__(
        self,
        source: SourceConfig,
        http: httpx.Client,
        *,
        on_request: Callable[[dict[str, Any]], None] | None = None,
        deadline: float | None = None,
        backoff_base: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        should_stop: Callable[[], bool] | None = None,
    ):
        self.source = source
        # Set by SIGTERM/SIGINT: a retry wait (a Retry-After can be minutes) ends at once
        # and no new attempt starts, so stopping never waits out a registry's backoff.
        self.should_stop = should_stop
        self.http = http
        self.limiter = RateLimiter(source.requests_per_second, sleep=sleep)
        self.on_request = on_request
        self.deadline = deadline  # time.monotonic() value after which no new wait starts
        self.backoff_base = backoff_base
        self._sleep = sleep
        self.requests = 0
        self._count_lock = threading.Lock()

    # -- the retry policy ---------------------------------------------------------

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        backoff = min(60.0, self.backoff_base * (2 ** (state.attempt_number - 1)))
        backoff = backoff * (0.5 + random.random() / 2)
        retry_after = getattr(exc, "retry_after", None)
        return max(backoff, retry_after or 0.0)

    def _retry_sleep(self, seconds: float) -> None:
        if self.should_stop is None:
            self._sleep(seconds)
            return
        end = time.monotonic() + seconds
        while not self.should_stop():
            left = end - time.monotonic()
            if left <= 0:
                return
            self._sleep(min(left, 0.2))

    def _should_stop(self, state: tenacity.RetryCallState) -> bool:
        if self.should_stop is not None and self.should_stop():
            return True
        if state.attempt_number > self.source.retries:
            return True
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None and retry_after > self.source.max_retry_wait:
            return True
        if self.deadline is not None:
            if time.monotonic() + (retry_after or 0.0) > self.deadline:
                return True
        return False

    def get(self, url: str, params: dict[str, Any] | None = None, *, trial_id: str | None = None) -> Response:
        """GET ``url``; returns 2xx and 404 responses, raises FetchError for the rest."""
        started = time.monotonic()
        attempts = 0

        def attempt() -> Response:
            nonlocal attempts
            if attempts and self.should_stop is not None and self.should_stop():
                raise FetchError(f"run stopped before retrying {url}", url=url)
            attempts += 1
            return self._attempt(url, params)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(TransientFetchError),
            wait=self._wait,
            stop=self._should_stop,
            sleep=self._retry_sleep,
            reraise=True,
        )
        full_url = str(self.http.build_request("GET", url, params=params).url)
        try:
            response = retrying(attempt)
        except FetchError as exc:
            self._log(full_url, exc.status, attempts, started, str(exc), trial_id)
            raise
        response.attempts = attempts
        response.elapsed_ms = int((time.monotonic() - started) * 1000)
        self._log(full_url, response.status, attempts, started, None, trial_id)
        return response

    def _log(self, url: str, status: int | None, attempts: int, started: float, error: str | None, trial_id: str | None) -> None:
        if self.on_request is not None:
            self.on_request(
                {
                    "source": self.source.name,
                    "url": url,
                    "status": status,
                    "attempts": attempts,
                    "elapsed_ms": int((time.monotonic() - started) * 1000),
                    "error": error,
                    "trial_id": trial_id,
                }
            )

    def _attempt(self, url: str, params: dict[str, Any] | None) -> Response:
        self.limiter.wait()
        with self._count_lock:
            self.requests += 1
        cap = self.source.max_response_bytes
        total_deadline = time.monotonic() + self.source.timeout * 3
        headers = {"User-Agent": self.source.user_agent}
        try:
            with self.http.stream(
                "GET", url, params=params, headers=headers, timeout=self.source.timeout
            ) as response:
                status = response.status_code
                where = str(response.request.url)
                if status in RETRY_STATUSES:
                    raise TransientFetchError(
                        f"HTTP {status} from {where}",
                        url=where,
                        status=status,
                        retry_after=parse_retry_after(response.headers.get("Retry-After")),
                    )
                if status >= 400 and status != 404:
                    raise FetchError(f"HTTP {status} from {where}", url=where, status=status)
                length = response.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > cap:
                    raise ResponseTooLarge(
                        f"response of {int(length)} bytes from {where} exceeds the {cap}-byte cap",
                        url=where,
                        status=status,
                    )
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > cap:
                        raise ResponseTooLarge(
                            f"response from {where} exceeds the {cap}-byte cap", url=where, status=status
                        )
                    if time.monotonic() > total_deadline:
                        raise TransientFetchError(
                            f"response from {where} too slow (over {self.source.timeout * 3:.0f}s)",
                            url=where,
                            status=status,
                        )
                    chunks.append(chunk)
                return Response(
                    url=where, status=status, headers=response.headers, body=b"".join(chunks), attempts=1, elapsed_ms=0
                )
        except httpx.TimeoutException as exc:
            raise TransientFetchError(f"timeout fetching {url}: {type(exc).__name__}", url=url) from None
        except httpx.TransportError as exc:
            raise TransientFetchError(f"network error fetching {url}: {type(exc).__name__}: {exc}", url=url) from None
        except httpx.DecodingError as exc:
            raise TransientFetchError(f"undecodable response from {url}: {exc}", url=url) from None
        except httpx.TooManyRedirects:
            # not a TransportError: it escaped every handler and ended the whole run
            raise FetchError(f"too many redirects fetching {url} (a redirect loop?)", url=url) from None
        except httpx.HTTPError as exc:  # anything else httpx raises about this request
            raise FetchError(f"HTTP error fetching {url}: {type(exc).__name__}: {exc}", url=url) from None
