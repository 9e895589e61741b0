"""``trialwatch daemon``: refresh on schedule, then deliver the new alerts.

One APScheduler job per enabled source, on that source's cron expression from
``[schedule]`` (with ``schedule.jitter`` seconds of random delay).  Each job:

1. takes the database's refresh lock (:class:`pipeline.lock.RefreshLock`), so the
   daemon's own jobs and a ``trialwatch refresh`` started by cron never overlap: the
   job waits for the holder (``--wait``, the default) or skips this run with a log line;
2. calls the same :func:`pipeline.refresh.refresh` as the CLI, with the daemon's stop flag;
3. raises failure alerts for trials that failed run after run, and delivers what is
   new to every channel (:func:`pipeline.deliver.deliver_pending`).

A job never runs twice at once (``max_instances=1``), missed runs are coalesced into
one, and an error in one source's job is logged and does not stop the other.
SIGTERM or SIGINT sets the stop flag: the trial in hand finishes its transaction,
the run is recorded as interrupted, the scheduler shuts down and the process exits 0.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from pipeline.config import Config
from pipeline.cron import cron_trigger, next_fire_times
from pipeline.errors import LockHeld, TrialwatchError
from pipeline.lock import RefreshLock

log = logging.getLogger("trialwatch.daemon")

#: A run that could not start on time still starts if it is at most this late.
MISFIRE_GRACE = 3600


@dataclass
class JobOutcome:
    """What one scheduled job did (for --once and for tests)."""

    source: str
    ran: bool
    run_id: int | None = None
    failed_trials: int = 0
    delivery_failures: int = 0
    error: str | None = None

    @property
    def failed(self) -> bool:
        """A trial failed, a channel failed, or the job itself failed."""
        return bool(self.error or self.failed_trials or self.delivery_failures)


def once_exit_code(outcomes: list[JobOutcome]) -> int:
    """``daemon --once``'s exit code, as ``refresh`` and ``deliver`` would give: 1 on any failure.

    A run skipped under ``--no-wait`` (another refresh held the lock) is not a failure.
    """
    return 1 if any(o.failed for o in outcomes) else 0


def next_runs(config: Config, now: datetime) -> dict[str, datetime | None]:
    """When each enabled source's job fires next after ``now`` (jitter not included; pure)."""
    out: dict[str, datetime | None] = {}
    for source in config.enabled_sources():
        times = next_fire_times(config.schedule[source], now, 1)
        out[source] = times[0] if times else None
    return out


class Daemon:
    """The scheduled jobs of one configuration.

    With ``reload`` (a function returning a freshly loaded Config) and ``config_path``,
    each job re-reads the config file when it changed since the last run, so trials
    added with ``trialwatch watch add`` and edited alert rules take effect without a
    restart.  A config that is empty or no longer validates is logged and the last good
    one kept.
    Schedules are read once, at start: a changed schedule needs a restart (logged).
    """

    def __init__(
        self,
        config: Config,
        *,
        should_stop: Callable[[], bool],
        wait_for_lock: bool = True,
        lock_poll: float = 0.5,
        reload: Callable[[], Config] | None = None,
        config_path: Path | None = None,
    ):
        self.config = config
        self.should_stop = should_stop
        self.wait_for_lock = wait_for_lock
        self.lock_poll = lock_poll
        self.scheduler = None
        self._reload = reload
        self._config_path = config_path
        self._config_signature = self._signature()
        self._reload_lock = threading.Lock()
        #: Set when the database was deleted or replaced under the daemon: it stops.
        self.fatal: str | None = None
        self._db_existed = config.database_path.exists()

    def _signature(self) -> tuple[int, int, int] | None:
        """What tells a changed config file: inode (an atomic replace), mtime and size."""
        try:
            st = self._config_path.stat() if self._config_path else None
        except OSError:
            return None
        return None if st is None else (st.st_ino, st.st_mtime_ns, st.st_size)

    def _maybe_reload(self) -> None:
        """Re-read the config file if it changed (see the class docstring).

        A file that is empty or does not validate (an editor caught mid-write, a
        broken edit) keeps the previous config, and is looked at again before the
        next run, so the finished write is never missed.
        """
        if self._reload is None:
            return
        with self._reload_lock:
            signature = self._signature()
            if signature is None or signature == self._config_signature:
                return
            try:
                blank = not self._config_path.read_bytes().strip()
            except OSError:
                blank = True
            if blank:
                log.error("config file %s is empty (being rewritten?), keeping the previous config", self._config_path)
                return
            try:
                fresh = self._reload()
            except TrialwatchError as exc:
                log.error("config changed but is not valid, keeping the previous one: %s", exc)
                return
            self._config_signature = signature
            old = self.config
            kept = dict(schedule=old.schedule, schedule_jitter=old.schedule_jitter, sources=old.sources,
                        database_path=old.database_path)
            if any(getattr(fresh, k) != v for k, v in kept.items()):
                log.warning("config changed: new schedules, source settings or database take effect on restart")
            log.info("config re-read: %d trials watched, %d alert rules", len(fresh.trials), len(fresh.alerts))
            self.config = replace(fresh, **kept)

    # -- one job ----------------------------------------------------------------------

    def _take_lock(self, source: str) -> RefreshLock | None:
        """The refresh lock, or None when skipping (held and not waiting, or told to stop)."""
        announced = False
        while not self.should_stop():
            lock = RefreshLock(self.config.database_path, wait=False)
            try:
                lock.acquire()
                return lock
            except LockHeld:
                if not self.wait_for_lock:
                    log.warning("%s: skipped this run: another refresh (pid %s) holds the lock", source, lock.holder())
                    return None
                if not announced:
                    holder = lock.holder()
                    who = "this daemon's other job" if holder == str(os.getpid()) else f"another refresh (pid {holder})"
                    log.info("%s: waiting for %s to finish", source, who)
                    announced = True
            time.sleep(self.lock_poll)
        return None

    def run_source(self, source: str) -> JobOutcome:
        """Refresh one source and deliver; never raises (a failing source must not stop the other).

        A database deleted or replaced under the daemon sets :attr:`fatal` instead of
        being retried: :meth:`run_forever` then stops.
        """
        from pipeline.deliver import deliver_pending, note_failures
        from pipeline.errors import DatabaseReplaced
        from pipeline.refresh import refresh
        from pipeline.store import open_store
        from pipeline.store.base import replaced_message

        outcome = JobOutcome(source, ran=False)
        self._maybe_reload()
        config = self.config  # one config for the whole job, whatever another job re-reads
        lock = self._take_lock(source)
        if lock is None:
            return outcome
        started = time.monotonic()
        try:
            if self._db_existed and not config.database_path.exists():
                # opening it would create an empty file: a new history, silently
                raise DatabaseReplaced(replaced_message(config.database_path))
            with open_store(config) as store:
                self._db_existed = True
                store.check_identity()  # the file this daemon started on, not a new one
                result = refresh(config, store, sources=[source], trigger="daemon", should_stop=self.should_stop)
                outcome.ran, outcome.run_id = True, result.run_id
                outcome.failed_trials = result.counts["failed"]
                log.info(
                    "%s: run %d %s in %.1f s: %s%s",
                    source,
                    result.run_id,
                    "interrupted" if result.interrupted else "finished",
                    time.monotonic() - started,
                    result.summary(),
                    self._next_note(source),
                )
                for line in result.unreachable_lines():
                    log.error("%s", line)
                if self.should_stop():
                    log.info("%s: stopping: alerts not delivered now, they wait for the next run", source)
                    return outcome
                note_failures(config, store)
                outcomes = deliver_pending(config, store, should_stop=self.should_stop)
                outcome.delivery_failures = sum(1 for o in outcomes if not o.ok)
        except DatabaseReplaced as exc:  # never retried: the daemon stops (exit 1)
            outcome.error = str(exc)
            self.fatal = str(exc)
            log.error("%s: %s", source, exc)
        except Exception as exc:  # logged, and the next run tries again
            outcome.error = f"{type(exc).__name__}: {exc}"
            log.error("%s: run failed: %s", source, outcome.error)
        finally:
            lock.release()
        return outcome

    def _next_note(self, source: str) -> str:
        """'; next run T' from the cron expression (jitter not included).

        Computed, not asked of the scheduler: a job must never take the scheduler's
        locks, which ``shutdown(wait=True)`` holds while it waits for that job.
        """
        when = next_runs(self.config, now_utc()).get(source)
        return f"; next run {when:%Y-%m-%dT%H:%M:%SZ}" if when else ""

    # -- scheduling -------------------------------------------------------------------

    def run_once(self, sources: list[str] | None = None) -> list[JobOutcome]:
        """Run each enabled source's job once, in turn (``trialwatch daemon --once``)."""
        out = []
        for source in sources or self.config.enabled_sources():
            if self.should_stop():
                break
            out.append(self.run_source(source))
        return out

    def start(self):
        """Start the scheduler in the background; returns it."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler = BackgroundScheduler(
            timezone=timezone.utc,
            executors={"default": ThreadPoolExecutor(max_workers=max(1, len(self.config.enabled_sources())))},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": MISFIRE_GRACE},
        )
        for source in self.config.enabled_sources():
            trigger = cron_trigger(self.config.schedule[source], jitter=self.config.schedule_jitter or None)
            scheduler.add_job(self.run_source, trigger, args=[source], id=source, name=f"refresh {source}")
        self.scheduler = scheduler
        scheduler.start()
        for source in self.config.enabled_sources():
            log.info(
                "%s: schedule %r (jitter up to %d s)%s",
                source,
                self.config.schedule[source],
                self.config.schedule_jitter,
                self._next_note(source),
            )
        return scheduler

    def run_forever(self, stop_event: threading.Event) -> None:
        """Run until ``stop_event`` is set, then let the job in hand finish and shut down."""
        if not self.config.enabled_sources():
            log.warning("no source is enabled: nothing to schedule")
        self.start()
        channels = ", ".join(f"{r.channel} {r.name!r}" for r in self.config.alerts) or "none configured"
        log.info("daemon running (pid %d); alerts: %s; SIGTERM or Ctrl-C stops it", os.getpid(), channels)
        while not stop_event.wait(0.5):
            if self.fatal is not None:
                log.error("stopping: %s", self.fatal)
                break
        log.info("stopping: letting the trial in hand finish")
        assert self.scheduler is not None
        self.scheduler.shutdown(wait=True)
        log.info("stopped")


def setup_logging(level: int = logging.INFO, redact: logging.Filter | None = None) -> logging.Handler:
    """One line per event on stderr, UTC timestamps, secrets redacted; library chatter quieted."""
    import sys

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "trialwatch", False)]:
        root.removeHandler(old)  # set up twice in one process (tests): replace, never stack
    handler = logging.StreamHandler(sys.stderr)
    handler.trialwatch = True  # type: ignore[attr-defined]
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    if redact is not None:
        handler.addFilter(redact)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("apscheduler", "httpx", "httpcore", "apprise"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler


def now_utc() -> datetime:
    return datetime.now(timezone.utc)
