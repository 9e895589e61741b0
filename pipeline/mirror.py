"""Query watches: keep a mirror of every ClinicalTrials.gov study matching a search current.

A query watch (``[[watch.queries]]`` in the config) stands for a ``/studies`` search
(``query.cond``, ``query.term``, ``query.intr``, ``query.spons``,
``filter.overallStatus``).  :func:`refresh_queries` is called by
:func:`pipeline.refresh.refresh` for the ``ctgov`` source, so the CLI and the daemon
both keep query watches current:

* **First load**: every match, ``pageSize=1000`` pages followed with ``pageToken``.
  Each page is normalized, diffed and written (one transaction per page) as it
  arrives and then let go, so memory stays flat however many studies match.
* **Later runs** ask only for studies updated since the last sync:
  ``filter.advanced=AREA[LastUpdatePostDate]RANGE[<sync date - 2 days>,MAX]``.  The
  sync date is the registry's own date (``/version``'s ``dataTimestamp`` read before
  the sync), never our clock, and windows overlap by two days since the registry's
  dates have no time of day.  A status filter is left out of incremental requests and
  applied here, so a watched trial that stops matching (RECRUITING -> COMPLETED) is
  still seen, its change recorded, and its membership marked ``left``.
* **Nothing moved**: when ``dataTimestamp`` equals the one of the last complete sync,
  the query costs no ``/studies`` request at all (one ``/version`` request per run).
* **Full sweep** every ``sources.ctgov.full_sweep_days`` days (and on demand,
  ``trialwatch refresh --full-sweep``): the query's IDs are listed with
  ``fields=NCTId`` (a few bytes per study).  A member not listed is confirmed with
  ``filter.ids``: not returned -> one ``missing`` change; returned -> it left the query
  (its changes are recorded).  Listed IDs we do not hold are fetched.  An incremental
  query never shows a deletion; only this does.
* A sync that fails part way (a page that cannot be fetched, the run budget spent,
  the run stopped) is not recorded as done: the next run repeats the window (or the
  first load), and what was already stored makes that cheap.

Query watches work on a source whose ``queries`` API is not None (today
ClinicalTrials.gov: :data:`pipeline.sources.ctgov.QUERIES`); which trials each query
holds is the ``query_members`` table.  With ``backfill = true`` every member's history is loaded
once (:mod:`pipeline.backfill`), as far as the run budget allows per run.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable, Iterable

import orjson

from pipeline.backfill import backfill_trial
from pipeline.clock import utcnow
from pipeline.codec import compress
from pipeline.config import Config, QueryWatch
from pipeline.errors import FetchError, ParseError
from pipeline.gc_pause import gc_paused
from pipeline.plan import Tally, Update, judge_vanished, plan_fetched, plan_missing
from pipeline.sources import Fetched, Source
from pipeline.store import Store

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.http_client import RegistryClient

log = logging.getLogger(__name__)

#: Days the incremental windows overlap (registry dates have no time of day).
OVERLAP_DAYS = 2
#: Trials written per transaction outside query pages (sweep confirmations).
BATCH = 500

ProgressFn = Callable[[str, int, int], None]


class SyncIncomplete(Exception):
    """A query sync stopped part way (stop requested or run budget spent)."""


def query_key(query: QueryWatch) -> str:
    """The canonical form of a query's parameters (a changed query is loaded afresh)."""
    return orjson.dumps(query.params(), option=orjson.OPT_SORT_KEYS).decode()


def window_start(sync_date: str, overlap_days: int = OVERLAP_DAYS) -> str:
    """First day of the incremental window after a sync that covered ``sync_date``."""
    return (date.fromisoformat(sync_date[:10]) - timedelta(days=overlap_days)).isoformat()


def sweep_due(state: dict | None, full_sweep_days: int, now: datetime | None = None) -> bool:
    """True when the query's last complete ID sweep is older than ``full_sweep_days``."""
    if state is None or not state.get("last_full_sweep"):
        return True
    now = now or datetime.strptime(utcnow(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    last = datetime.strptime(state["last_full_sweep"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    if last > now:
        return True  # stamped by a clock that ran ahead: sweep now rather than months from now
    return now - last >= timedelta(days=full_sweep_days)


class QuerySync:
    """One query watch's sync within a run (state for one call of :meth:`run`)."""

    def __init__(
        self,
        query: QueryWatch,
        store: Store,
        client: RegistryClient,
        source: Source,
        run_id: int,
        *,
        progress: ProgressFn | None,
        stop: Callable[[], bool],
        flush_log: Callable[[], None],
    ):
        self.query = query
        self.store = store
        self.client = client
        self.source = source
        self.api = source.queries
        self.run_id = run_id
        self.progress = progress
        self.stop = stop
        self.flush_log = flush_log
        self.tally = Tally()
        self.counts: Counter = self.tally.counts
        self.label = f"query {query.name}"
        self.status_filter = frozenset(query.status)
        self._started: float | None = None
        #: Record query events (a trial starts or stops matching)?  Not while the query
        #: is (re)loaded from scratch: see :meth:`run`.
        self.announce = False

    # -- one run --------------------------------------------------------------------

    def run(self, data_timestamp: str | None, *, full_sweep: bool = False) -> Tally:
        q, store = self.query, self.store
        key = query_key(q)
        state = store.query_watch(q.name)
        fresh = state is None or state["params"] != key or not state["loaded_at"]
        sweep = full_sweep or fresh or sweep_due(state, self.client.source.full_sweep_days)
        if not fresh and not sweep and data_timestamp and state.get("data_timestamp") == data_timestamp:
            self.counts["queries_skipped"] += 1
            log.info("query %s: registry data unchanged since %s, nothing to fetch", q.name, data_timestamp)
            return self.tally
        # The registry's date, never our clock, says what a sync covered: without
        # /version's dataTimestamp a later sync keeps the window where it was (a clock
        # running ahead must not move it past updates never fetched).
        if data_timestamp:
            sync_date = data_timestamp[:10]
        elif not fresh and state.get("sync_date"):
            sync_date = state["sync_date"]
        else:
            sync_date = utcnow()[:10]
        now = utcnow()
        # Query events: once a query has had a complete load, a trial that starts or
        # stops matching it is a 'query' change.  Its first complete load (and the
        # reload after its parameters were edited) records none: it is the baseline,
        # not news, and would flood the change log with every match; `trialwatch
        # queries --members NAME` lists them.
        self.announce = not fresh
        if fresh:
            members = store.query_members(q.name, "member")
            seen = self._load(q.params(), members, incremental=False)
            self._reconcile(members - seen, set(), len(members))
            store.save_query_watch(
                q.name, key, loaded_at=now, sync_date=sync_date, data_timestamp=data_timestamp,
                last_sync=now, last_full_sweep=now,
            )
            self.counts["queries_loaded"] += 1
            return self.tally
        params = {k: v for k, v in q.params().items() if k != self.api.status_param}
        since = min(state["sync_date"], utcnow()[:10])  # a date stamped by a clock that ran ahead
        # The members are read only if a study of the window stopped matching (a large
        # query's set costs 10-15 ms to read).
        self._load(self.api.incremental_params(params, window_start(since)), None, incremental=True)
        values = dict(sync_date=sync_date, data_timestamp=data_timestamp, last_sync=now)
        if sweep:
            self._sweep()
            values["last_full_sweep"] = now
            self.counts["queries_swept"] += 1
        store.save_query_watch(q.name, key, **values)
        self.counts["queries_synced"] += 1
        return self.tally

    # -- loading pages ------------------------------------------------------------

    def _check_budget(self) -> None:
        if self.stop():
            self.tally.interrupted = True
            raise SyncIncomplete("stopped")
        deadline = self.client.deadline
        if deadline is not None and time.monotonic() > deadline:
            raise SyncIncomplete(f"run budget spent (sources.{self.source.name}.run_budget)")

    def _load(self, params: dict[str, str], members: set[str] | None, *, incremental: bool) -> set[str]:
        """Process every study of a search, page by page; returns the IDs seen."""
        with gc_paused():
            return self._load_pages(params, members, incremental=incremental)

    def _load_pages(self, params: dict[str, str], members: set[str] | None, *, incremental: bool) -> set[str]:
        """``members``: the query's members before the sync (None: read when first needed)."""
        seen: set[str] = set()
        done = 0
        total = 0
        for page in self.api.fetch_pages(self.client, params):
            if page.total is not None:
                total = page.total
            self.counts["bytes"] += page.nbytes
            matching: list[str] = []
            left: list[str] = []
            items: list[tuple[str, dict]] = []
            for study in page.studies:
                ids = self.api.study_ids(study)
                if not ids:
                    self.tally.fail(f"query {self.query.name}", self.source.name, "a study without an NCT ID")
                    continue
                nct = ids[0]
                if nct in seen:
                    continue
                seen.add(nct)
                if incremental and self.status_filter and self.api.study_status(study) not in self.status_filter:
                    if members is None:
                        members = self.store.query_members(self.query.name, "member")
                    if nct in members:
                        left.append(nct)  # stopped matching: record its change, mark it left
                        items.append((nct, study))
                    continue
                matching.append(nct)
                items.append((nct, study))
            page.studies = []  # let the page go as soon as its studies are planned
            self._save_studies(items, matching, left)
            if left:
                self.counts["left_query"] += len(left)
            done += len(items)
            if self.progress:
                self.progress(self.label, min(done, total) if total else done, max(total, done))
            else:
                self._log_progress(done, max(total, done))
            self.flush_log()
            del page, items
            gc.collect(1)
            self._check_budget()
        return seen

    def _log_progress(self, done: int, total: int) -> None:
        """Without a progress display (not a terminal, the daemon): a log line per page."""
        now = time.monotonic()
        if self._started is None:
            self._started = now
        started = self._started
        rate = done / max(now - started, 1e-6)
        eta = (total - done) / rate if rate > 0 else 0.0
        log.info("query %s: %d/%d studies (%.0f/s, ETA %.0fs)", self.query.name, done, total, rate, eta)

    def _save_studies(self, items: list[tuple[str, dict]], members: list[str], left: list[str] = ()) -> None:
        """Write a page's trials and their membership (matching: ``members``, stopped: ``left``) at once."""
        name = self.source.name
        states = self.store.load_states(name, [nct for nct, _ in items])
        updates = []
        for i, (nct, study) in enumerate(items):
            # Each study is let go once planned (its objects freed one study at a time,
            # their memory reused for the records) and its raw payload compressed now,
            # not at the page's save, so a page's ~48 MB of re-serialized payloads never
            # live at once.
            items[i] = None  # type: ignore[call-overload]
            fetched = Fetched(nct, name, "found", payload=study, raw_format="json")
            update = plan_fetched(self.store.load_snapshot, states.get(nct), fetched, self.source)
            del fetched, study
            if update.raw is not None:
                update.raw_zlib, update.raw = compress(update.raw), None
            updates.append(update)
        self._count(updates)
        self.store.save_updates_batch(updates, self.run_id, query=self.query.name, members=members, left=left,
                                      announce=self.announce)

    def _count(self, updates: Iterable[Update]) -> None:
        for update in updates:
            self.tally.count(update)

    # -- sweeps -------------------------------------------------------------------------

    def _sweep(self) -> None:
        """List the query's IDs; confirm members not listed, fetch listed non-members."""
        with gc_paused():
            self._sweep_pages()

    def _sweep_pages(self) -> None:
        listed: set[str] = set()
        done = 0
        for page in self.api.fetch_pages(self.client, self.query.params(), fields=self.api.sweep_fields):
            self.counts["bytes"] += page.nbytes
            for study in page.studies:
                ids = self.api.study_ids(study)
                if ids:
                    listed.add(ids[0])
            done += len(page.studies)
            if self.progress:
                self.progress(f"{self.label} (sweep)", done, max(page.total or 0, done))
            self._check_budget()
        members = self.store.query_members(self.query.name, "member")
        self._reconcile(members - listed, listed - members, len(members))

    def _reconcile(self, gone: set[str], unknown: set[str], answered: int) -> None:
        """Confirm ``gone`` members by ``filter.ids``; fetch ``unknown`` listed IDs.

        A gone member the registry does not return is missing (one change); one it
        returns exists but no longer matches the query (``left``).  ``answered`` is how
        many present members the registry answered for (listed or confirmed): the
        refresh's mass-disappearance guard (:func:`pipeline.plan.judge_vanished`)
        turns a wholesale vanishing into failures, believed only after several runs.
        """
        ids = sorted(gone | unknown)
        if not ids:
            return
        name = self.source.name
        states = self.store.load_states(name, ids)
        pending: list[Update] = []
        vanished: list[Update] = []
        marks: dict[str, list[str]] = {"member": [], "left": [], "missing": []}
        for fetched in self.api.fetch_by_ids(self.client, ids):
            nct = fetched.trial_id
            if fetched.status == "failed":
                self.tally.fail(nct, name, fetched.error or "fetch failed")
                continue
            if fetched.status == "missing":
                update = plan_missing(states.get(nct), nct, name, utcnow())
                if update.changes:  # present -> missing: held for the guard
                    vanished.append(update)
                    continue
                marks["missing"].append(nct)
            else:
                update = plan_fetched(self.store.load_snapshot, states.get(nct), fetched, self.source)
                marks["left" if nct in gone else "member"].append(nct)
            pending.append(update)
            if len(pending) >= BATCH:
                self._count(pending)
                self.store.save_updates_batch(pending, self.run_id)
                pending = []
        for update in judge_vanished(vanished, max(answered, len(vanished)), states):
            if update.outcome == "missing":
                marks["missing"].append(update.trial_id)
            pending.append(update)  # a suspected registry fault stays a member, failed for this run
        self._count(pending)
        self.store.save_updates_batch(pending, self.run_id)
        for state, members in marks.items():
            self.store.set_query_members(self.query.name, members, state, run_id=self.run_id,
                                         announce=self.announce, source=name)
        self.counts["left_query"] += len(marks["left"])
        self.flush_log()


def refresh_queries(
    config: Config,
    store: Store,
    client: RegistryClient,
    source: Source,
    run_id: int,
    *,
    progress: ProgressFn | None = None,
    stop: Callable[[], bool] = lambda: False,
    flush_log: Callable[[], None] = lambda: None,
    full_sweep: bool = False,
    queries: Iterable[QueryWatch] | None = None,
) -> Tally:
    """Bring every query watch up to date on ``source``; returns what the syncs came to.

    A query that fails is a failure in the tally (and the next run repeats its
    window); it never stops the other queries.
    """
    tally = Tally()
    chosen = list(config.queries if queries is None else queries)
    if not chosen:
        return tally
    try:
        data_timestamp = source.queries.fetch_data_timestamp(client)
    except (FetchError, ParseError) as exc:
        log.warning("%s /version unavailable (%s): syncing without the unchanged check", source.label, exc)
        data_timestamp = None
    if data_timestamp:
        store.set_meta(f"{source.name}.data_timestamp", data_timestamp)
    for query in chosen:
        if stop():
            tally.interrupted = True
            break
        sync = QuerySync(query, store, client, source, run_id, progress=progress, stop=stop, flush_log=flush_log)
        try:
            sync.run(data_timestamp, full_sweep=full_sweep)
        except SyncIncomplete as exc:
            sync.counts["queries_incomplete"] += 1
            log.warning("query %s: sync incomplete (%s); the next run repeats it", query.name, exc)
        except (FetchError, ParseError) as exc:
            sync.counts["queries_failed"] += 1
            sync.tally.fail(f"query {query.name}", source.name, f"{type(exc).__name__}: {exc}")
        tally.add(sync.tally)
    for query in chosen:
        if query.backfill and not stop():
            tally.add(backfill_members(store, client, source, query, run_id, stop=stop, progress=progress))
    return tally


def backfill_members(
    store: Store,
    client: RegistryClient,
    source: Source,
    query: QueryWatch,
    run_id: int,
    *,
    stop: Callable[[], bool],
    progress: ProgressFn | None = None,
) -> Tally:
    """Backfill the history of the query's members not backfilled yet, within the run budget."""
    tally = Tally()
    counts = tally.counts
    if source.history is None:
        return tally
    todo = sorted(store.query_members(query.name, "member") - store.backfilled_trials(source.name))
    for i, trial_id in enumerate(todo, 1):
        if stop() or (client.deadline is not None and time.monotonic() > client.deadline):
            counts["backfill_deferred"] += len(todo) - i + 1
            break
        outcome = backfill_trial(store, client, source, trial_id, run_id)
        counts["backfilled"] += outcome.error is None
        counts["backfill_versions"] += outcome.stored
        if outcome.error:
            counts["backfill_failed"] += 1
            tally.failures.append((trial_id, source.name, f"backfill: {outcome.error}"))
        if progress:
            progress(f"backfill {query.name}", i, len(todo))
    return tally
