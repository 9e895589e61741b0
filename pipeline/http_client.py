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
  (:class:`ResponseTooLarge`);
* every request has a TOTAL deadline (connect, send, headers and body together:
  ``timeout`` seconds, capped by what is left of the run's budget), enforced below
  httpx by :class:`DeadlineBackend`: httpx's own timeouts are per socket operation,
  so a server sending one byte a second never trips them.  Socket reads are waited
  for in short slices, so a stop request (SIGTERM) ends a request within a fraction
  of a second too.  A request cut by the stop or the budget raises
  :class:`RequestAbandoned` (not the registry's fault: the trial is deferred); one
  cut by its own ``timeout`` is a :class:`TransientFetchError` ("too slow");
* no request starts once the run's budget is spent or a stop was requested (a
  rate-limit wait ends early for the same reasons);
* other 4xx are permanent :class:`FetchError`; a 404 is returned to the caller,
  for whom it means "missing";
* a registry that cannot be connected to at all (refused, DNS failure, TLS failure,
  connect timeout) in the first :data:`UNREACHABLE_AFTER` attempts in a row of a run,
  before any connection to it succeeded, is given up for the run:
  :class:`SourceUnreachable` is raised, then raised at once for every later request
  (nothing is sent).  One such error, then a success, is only retried as any other.

Parsing never happens here, so a parse error can never be retried by accident.
"""

from __future__ import annotations

import contextlib
import contextvars
import email.utils
import random
import os
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import httpcore
import httpx
import tenacity

from pipeline.config import SourceConfig
from pipeline.errors import FetchError, RequestAbandoned, ResponseTooLarge, SourceUnreachable, TransientFetchError

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 403})

#: Attempts in a row that could not connect, with no connection made yet in the run,
#: after which a source is given up for the run (:class:`SourceUnreachable`).
UNREACHABLE_AFTER = 3


def connect_cause(exc: BaseException) -> str:
    """Why a connection could not be made, in a few words, from httpx's exception chain."""
    import ssl

    seen = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return f"host name not resolved: {seen.strerror or seen}"
        if isinstance(seen, ssl.SSLError):
            return f"TLS failed: {getattr(seen, 'verify_message', None) or seen.reason or seen}"
        if isinstance(seen, (httpx.ConnectTimeout, httpcore.ConnectTimeout, socket.timeout)):
            return "connection timed out"
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    lowered = text.lower()
    if "connection refused" in lowered:
        return "connection refused"
    if "name or service not known" in lowered or "nodename nor servname" in lowered or "name resolution" in lowered:
        return f"host name not resolved: {text}"
    if "ssl" in lowered or "certificate" in lowered:
        return f"TLS failed: {text}"
    return text or type(exc).__name__


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

    def wait(self, sleep: Callable[[float], None] | None = None) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        delay = slot - now
        if delay > 0:
            (sleep or self._sleep)(delay)


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


# -- total deadlines -----------------------------------------------------------------------

#: How long one wait on a socket lasts before the deadline and the stop flag are checked again.
SLICE = 0.25


class Deadline:
    """A wall-clock limit on one whole request or send, and the flag that stops it early.

    ``at`` is a ``time.monotonic()`` value.  ``budget_at`` (optional) is the end of the
    run's budget: the limit is whichever comes first.  After an operation was cut,
    ``reason`` says why: ``"timeout"`` (the request's own limit), ``"budget"`` or
    ``"stop"``.
    """

    def __init__(
        self,
        seconds: float,
        *,
        budget_at: float | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.budget_at = budget_at
        self.should_stop = should_stop
        self.reason: str | None = None

    def remaining(self) -> float:
        """Seconds left (<= 0 once cut; ``reason`` is then set)."""
        if self.should_stop is not None and self.should_stop():
            self.reason = "stop"
            return 0.0
        now = time.monotonic()
        left = self.at - now
        if self.budget_at is not None and self.budget_at - now < left:
            left = self.budget_at - now
            if left <= 0:
                self.reason = "budget"
                return 0.0
        if left <= 0:
            self.reason = "timeout"
        return left

    def describe(self) -> str:
        if self.reason == "stop":
            return "stopped (SIGTERM/SIGINT)"
        if self.reason == "budget":
            return "cut at the end of the run's budget"
        return f"no complete answer within {self.seconds:g} s"


_CURRENT: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("trialwatch_deadline", default=None)


@contextlib.contextmanager
def total_deadline(deadline: Deadline) -> Iterator[Deadline]:
    """Every socket operation of the clients built here, in this thread, obeys ``deadline``."""
    token = _CURRENT.set(deadline)
    try:
        yield deadline
    finally:
        _CURRENT.reset(token)


def _bounded(timeout: float | None, timeout_exc: type[Exception]) -> float | None:
    """``timeout`` cut to what is left of the thread's :class:`Deadline` (``timeout_exc`` when none is)."""
    deadline = _CURRENT.get()
    if deadline is None:
        return timeout
    left = deadline.remaining()
    if left <= 0:
        raise timeout_exc(deadline.describe())
    return left if timeout is None else min(timeout, left)


def _sliced(op: Callable[[float | None], Any], timeout: float | None, timeout_exc: type[Exception]) -> Any:
    """Run a resumable socket operation in short slices until it succeeds, times out or is cut."""
    deadline = _CURRENT.get()
    if deadline is None:
        return op(timeout)
    op_end = None if timeout is None else time.monotonic() + timeout
    while True:
        left = deadline.remaining()
        if left <= 0:
            raise timeout_exc(deadline.describe())
        if op_end is not None:
            op_left = op_end - time.monotonic()
            if op_left <= 0:
                raise timeout_exc("timed out")
            left = min(left, op_left)
        try:
            return op(min(left, SLICE))
        except timeout_exc:
            continue  # a slice ran out: check the deadline, the stop flag, the operation's own timeout


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose reads and writes obey the thread's :class:`Deadline`."""

    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # A recv that times out consumed nothing (TLS included): safe to try again.
        return _sliced(lambda t: self._inner.read(max_bytes, t), timeout, httpcore.ReadTimeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        sock = self._inner.get_extra_info("socket")
        if _CURRENT.get() is None or not isinstance(sock, socket.socket) or hasattr(self._inner, "ssl_obj"):
            # no deadline, or TLS inside TLS (a proxy): one write, bounded by the smaller limit
            return self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))
        view = memoryview(buffer)

        def send(t: float | None) -> int:
            try:
                sock.settimeout(t)
                return sock.send(view)
            except socket.timeout:
                raise httpcore.WriteTimeout("timed out") from None
            except OSError as exc:
                raise httpcore.WriteError(str(exc)) from None

        while view:
            # send() that times out sent nothing; a TLS retry repeats the same buffer, as required.
            sent = _sliced(send, timeout, httpcore.WriteTimeout)
            view = view[sent:]

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        timeout = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend with every socket operation under the thread's Deadline.

    A connection attempt is bounded by the deadline too (one attempt, not sliced: a
    stop request waits for at most the time left).
    """

    def __init__(self, inner: httpcore.NetworkBackend):
        self._inner = inner

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        stream = self._inner.connect_tcp(host, port, _bounded(timeout, httpcore.ConnectTimeout), local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        return _DeadlineStream(self._inner.connect_unix_socket(path, _bounded(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def install_deadlines(client: httpx.Client) -> httpx.Client:
    """Put :class:`DeadlineBackend` under every transport of ``client`` (proxies from the
    environment included); returns the client.

    httpx has no public hook for the network backend, so this reaches into its
    transports (``_transport``, ``_mounts``) and httpcore's pools (``_network_backend``,
    read each time a connection is made).  tests/test_net_deadlines.py fails if an
    upgrade moves them.
    """
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is not None and not isinstance(backend, DeadlineBackend):
            pool._network_backend = DeadlineBackend(backend)
    return client


class LazyCATLSContext(ssl.SSLContext):
    """The client TLS context httpx builds for ``verify=True``, CA certificates loaded at first use.

    Same settings (``PROTOCOL_TLS_CLIENT``, ``CERT_REQUIRED``, host names checked) and
    the same CA bundle (``SSL_CERT_FILE``, else ``SSL_CERT_DIR``, else certifi), but the
    bundle (~150 certificates, 20-45 ms of CPU) is read only when a TLS connection is
    first made: a run against ``http://`` registries (the simulator, the bench) never
    pays it, and an ``https://`` one pays it once, before its first handshake.  Nothing
    is ever verified less: a handshake cannot start before the bundle is loaded.
    """

    _ca_loaded = False

    def _load_ca(self) -> None:
        if self._ca_loaded:
            return
        with _CA_LOCK:
            if self._ca_loaded:
                return
            if os.environ.get("SSL_CERT_FILE"):
                self.load_verify_locations(cafile=os.environ["SSL_CERT_FILE"])
            elif os.environ.get("SSL_CERT_DIR"):
                self.load_verify_locations(capath=os.environ["SSL_CERT_DIR"])
            else:
                import certifi

                self.load_verify_locations(cafile=certifi.where())
            self._ca_loaded = True

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:  # type: ignore[override]
        self._load_ca()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:  # type: ignore[override]
        self._load_ca()
        return super().wrap_bio(*args, **kwargs)


_CA_LOCK = threading.Lock()


def verifying_tls_context() -> LazyCATLSContext:
    """A fresh :class:`LazyCATLSContext` (as strict as ``ssl.create_default_context``)."""
    ctx = LazyCATLSContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog and not sys.flags.ignore_environment:
        ctx.keylog_filename = keylog
    return ctx


def build_http_client(timeout: float = 30.0) -> httpx.Client:
    """The shared httpx client (one per process; sources share its connection pool).

    Requests made under :func:`total_deadline` obey it (see :class:`DeadlineBackend`).
    TLS verification is httpx's default, with the CA bundle read at the first TLS
    connection (:class:`LazyCATLSContext`).
    """
    return install_deadlines(
        httpx.Client(
            verify=verifying_tls_context(),
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            follow_redirects=True,
            headers={"Accept-Encoding": "gzip, deflate"},
        )
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
        #: Set once the source is given up for the run (see :data:`UNREACHABLE_AFTER`).
        self.unreachable: SourceUnreachable | None = None
        self._connected = False       # a connection to the registry succeeded in this run
        self._connect_failures = 0    # attempts in a row that could not connect

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
        self._check_may_start(url)  # nothing sent, nothing logged
        started = time.monotonic()
        attempts = 0

        def attempt() -> Response:
            nonlocal attempts
            if attempts:
                self._check_may_start(url)
            attempts += 1
            try:
                response = self._attempt(url, params)
            except TransientFetchError as exc:
                cause = getattr(exc, "connect_cause", None)
                if cause is not None:
                    self._note_connect_failure(url, cause)
                raise
            with self._count_lock:
                self._connect_failures = 0
            return response

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

    def _note_connect_failure(self, url: str, cause: str) -> None:
        """Count an attempt that could not connect; give the source up (raise) after a few in a row."""
        with self._count_lock:
            self._connect_failures += 1
            if self._connected or self._connect_failures < UNREACHABLE_AFTER:
                return
            if self.unreachable is None:
                base = self.source.base_url
                self.unreachable = SourceUnreachable(
                    f"cannot connect to {base} ({cause})", url=url, base_url=base, cause=cause
                )
        raise self._unreachable_error()

    def _unreachable_error(self) -> SourceUnreachable:
        """A fresh SourceUnreachable like the one that gave the source up (threads raise their own)."""
        u = self.unreachable
        assert u is not None
        return SourceUnreachable(str(u), url=u.url, base_url=u.base_url, cause=u.cause)

    def _stopping(self) -> bool:
        return self.should_stop is not None and self.should_stop()

    def _budget_spent(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _check_may_start(self, url: str) -> None:
        """RequestAbandoned once a stop was requested or the run's budget is spent;
        SourceUnreachable once the source was given up for the run."""
        if self.unreachable is not None:
            raise self._unreachable_error()
        if self._stopping():
            raise RequestAbandoned(f"run stopped before requesting {url}", url=url)
        if self._budget_spent():
            raise RequestAbandoned(f"run budget spent before requesting {url}", url=url)

    def _wait_for_slot(self, url: str) -> None:
        """The rate limiter's wait, in slices: it ends early on a stop or at the budget's end."""
        self.limiter.wait(sleep=self._sliced_sleep)
        self._check_may_start(url)

    def _sliced_sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not (self._stopping() or self._budget_spent()):
            left = end - time.monotonic()
            if left <= 0:
                return
            self._sleep(min(left, SLICE))

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
        self._wait_for_slot(url)
        with self._count_lock:
            self.requests += 1
        deadline = Deadline(self.source.timeout, budget_at=self.deadline, should_stop=self.should_stop)
        try:
            with total_deadline(deadline):
                return self._read(url, params, deadline)
        except httpx.TimeoutException as exc:
            if deadline.reason in ("stop", "budget"):
                raise RequestAbandoned(f"{url}: {deadline.describe()}", url=url) from None
            if deadline.reason == "timeout":
                error = TransientFetchError(f"timeout fetching {url}: too slow, {deadline.describe()}", url=url)
            else:
                error = TransientFetchError(f"timeout fetching {url}: {type(exc).__name__}", url=url)
            if isinstance(exc, httpx.ConnectTimeout):
                error.connect_cause = "connection timed out"  # type: ignore[attr-defined]
            raise error from None

    def _read(self, url: str, params: dict[str, Any] | None, deadline: Deadline) -> Response:
        """One GET under ``deadline``, its body read in a stream (see :meth:`_attempt`)."""
        cap = self.source.max_response_bytes
        headers = {"User-Agent": self.source.user_agent}
        try:
            with self.http.stream(
                "GET", url, params=params, headers=headers, timeout=self.source.timeout
            ) as response:
                self._connected = True
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
                    if deadline.remaining() <= 0:  # also for an httpx client built elsewhere
                        raise httpx.ReadTimeout(deadline.describe())
                    chunks.append(chunk)
                return Response(
                    url=where, status=status, headers=response.headers, body=b"".join(chunks), attempts=1, elapsed_ms=0
                )
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.TimeoutException):
                raise  # _attempt says which limit it was
            error = TransientFetchError(f"network error fetching {url}: {type(exc).__name__}: {exc}", url=url)
            if isinstance(exc, httpx.ConnectError):
                error.connect_cause = connect_cause(exc)  # type: ignore[attr-defined]
            raise error from None
        except httpx.DecodingError as exc:
            raise TransientFetchError(f"undecodable response from {url}: {exc}", url=url) from None
        except httpx.TooManyRedirects:
            # not a TransportError: it escaped every handler and ended the whole run
            raise FetchError(f"too many redirects fetching {url} (a redirect loop?)", url=url) from None
        except httpx.HTTPError as exc:  # anything else httpx raises about this request
            raise FetchError(f"HTTP error fetching {url}: {type(exc).__name__}: {exc}", url=url) from None
