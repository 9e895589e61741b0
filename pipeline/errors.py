"""Every exception trialwatch raises on purpose, and what each one means for a run.

The hierarchy says what to retry and what never to retry:

``TrialwatchError``
    ``ConfigError``          bad config file, key, type or value: the command stops, exit 2,
                             before anything is written.
    ``InvalidTrialId``       a malformed trial ID or unknown registry prefix (exit 2).
    ``FetchError``           the registry did not give us a usable document for one trial.
                             Recorded in the fetch log and as a failure of that trial in the
                             run; never a change in the trial.
        ``TransientFetchError``  transport errors, timeouts, 429 and 5xx: retried with backoff
                                 inside the run (``retry_after`` honours the registry's header).
        ``BlockedPageError``     a 200 response whose content is an access-denied, bot-check or
                                 error page: not retried in this run, tried again next run.
        ``ResponseTooLarge``     the body passed the size cap.
        ``RequestAbandoned``     not started or cut short by a stop request or the run budget:
                                 the trial is deferred to the next run, not failed.
        ``SourceUnreachable``    the first few attempts in a row of a run could not connect to the
                                 registry at all (refused, DNS, TLS): the source is given up for
                                 the run; its trials fail, none is sent another request.
    ``ParseError``           a document we could not read (truncated JSON, HTML where JSON was
                             expected, a page that lost most of its fields at once).  Never
                             retried: the same bytes give the same failure.
    ``StoreError``           the database cannot be written (disk full, locked): the trial's
                             transaction is rolled back, nothing is half-written.
    ``LockHeld``             another refresher holds the database's refresh lock.
"""

from __future__ import annotations


class TrialwatchError(Exception):
    """Base class of the errors trialwatch raises deliberately."""


class ConfigError(TrialwatchError):
    """The configuration is unusable; ``key`` names the offending key path."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


class InvalidTrialId(TrialwatchError):
    """A trial ID that no registry we know would issue."""


class FetchError(TrialwatchError):
    """No usable document for a trial from a registry (this run)."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


class TransientFetchError(FetchError):
    """Worth retrying: transport failure, timeout, 429 or 5xx."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, url=url, status=status)
        self.retry_after = retry_after


class BlockedPageError(FetchError):
    """The registry answered with an access-denied, bot-check or error page."""


class ResponseTooLarge(FetchError):
    """The response body exceeded the configured size cap."""


class ParseError(TrialwatchError):
    """A document that could not be read as what it claims to be. Never retried."""


class StoreError(TrialwatchError):
    """The database could not be written; the transaction was rolled back."""


class DatabaseReplaced(StoreError):
    """The database file was deleted or replaced under a running process.

    Going on would silently start a new history, so a long-running process (the
    daemon) stops instead of retrying at its next job.
    """


class LockHeld(TrialwatchError):
    """Another process is refreshing this database."""


class RequestAbandoned(FetchError):
    """A request not started, or cut short, because the run was told to stop (SIGTERM) or
    its ``run_budget`` ran out: not the registry's fault, so the trial is deferred, not failed."""


class SourceUnreachable(FetchError):
    """The registry could not be connected to at all in this run (its first attempts in a row
    were refused, or its name did not resolve, or TLS failed): the source is given up for the
    run.  ``cause`` says why in a few words ("connection refused")."""

    def __init__(self, message: str, *, url: str | None = None, base_url: str = "", cause: str = ""):
        super().__init__(message, url=url)
        self.base_url = base_url
        self.cause = cause
