"""One refresh run: fetch every watched trial, compare, store.

This is the function the CLI, the daemon and the demo all call.  The run is
recorded once (:func:`pipeline.run_record.recorded_run`); then, for each enabled
source of :data:`pipeline.sources.SOURCES`, its watchlist: :meth:`Source.fetch`
streams :class:`~pipeline.sources.Fetched` items, :func:`pipeline.plan.plan_fetched`
normalizes each with the source's parser and plans the update against the stored
state (pure), and the store saves it (one transaction per trial that changed;
unchanged trials in batches, since only timestamps move for them).  Then the
source's query watches, if it has any (:mod:`pipeline.mirror`).  A trial that fails
is data in the result, never an exception that aborts the run; a source that fails
does not stop the others.  A source that cannot be connected to at all is given up
for the run (:class:`~pipeline.errors.SourceUnreachable`): its trials fail with the
reason and ``RefreshResult.unreachable`` says so in one line.  Each source's own
counts are recorded in ``run_sources`` (what ``trialwatch status`` shows).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

import httpx

from pipeline.clock import utcnow
from pipeline.config import Config
from pipeline.http_client import RegistryClient, build_http_client
from pipeline.mirror import refresh_queries
from pipeline.plan import Tally, Update, judge_vanished, plan_failed, plan_fetched
from pipeline.run_record import recorded_run
from pipeline.sources import SOURCES, Source
from pipeline.store import Store
from pipeline.trial_events import update_trials

ProgressFn = Callable[[str, int, int], None]

#: Unchanged trials are saved in batches of this many (one transaction).
BATCH = 500


@dataclass
class RefreshResult:
    """What a run did: counts per outcome, the failures, and the run's id."""

    run_id: int
    counts: Counter = field(default_factory=Counter)
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    interrupted: bool = False
    by_source: dict[str, Counter] = field(default_factory=dict)
    #: Sources given up for the run because they could not be connected to:
    #: name -> (base_url, cause, trials not checked).
    unreachable: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    #: (trial, source) of watched trials the registry has never returned (wrong IDs, likely).
    not_found: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.counts["failed"] else 0

    def unreachable_lines(self, only: str | None = None) -> list[str]:
        """One line per source given up for the run: what, why, how many trials, which key to fix."""
        return [
            f"{name}: cannot connect to {base} ({cause}); {n} trial{'s' if n != 1 else ''} not checked; "
            f"check sources.{name}.base_url"
            for name, (base, cause, n) in self.unreachable.items()
            if only is None or name == only
        ]

    def listed_failures(self) -> list[tuple[str, str, str]]:
        """The failures to list one by one: those of a source given up for the run are its one line."""
        return [f for f in self.failures if f[1] not in self.unreachable]

    def summary(self) -> str:
        c = self.counts
        text = (
            f"fetched {c['fetched']}, new {c['new']}, unchanged {c['unchanged']}, changed {c['changed']}, "
            f"missing {c['missing']}, failed {c['failed']}"
        )
        if self.not_found:
            ids = [f"{t} ({s})" for t, s in self.not_found]
            shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
            text += f" (not found in the registry: {shown})"
        if c["reappeared"]:
            text += f", reappeared {c['reappeared']}"
        if c["deferred"]:
            text += f", deferred to next run {c['deferred']}"
        if c["changes"]:
            text += f" ({c['changes']} field changes)"
        if c["raised"] or c["cleared"] or c["first_seen_flags"]:
            text += (f"; discrepancies and flags: {c['raised']} raised, {c['cleared']} resolved, "
                     f"{c['first_seen_flags']} open on first sight")
        queries = [f"{c[k]} {k[8:]}" for k in ("queries_loaded", "queries_synced", "queries_skipped",
                                               "queries_swept", "queries_incomplete", "queries_failed") if c[k]]
        if queries:
            text += "; queries: " + ", ".join(queries)
        if self.interrupted:
            text += " [interrupted]"
        return text


def watched_ids(config: Config, source: str) -> list[str]:
    """The watchlist's trial IDs that ``source`` watches (:meth:`Source.watches`)."""
    watches = SOURCES[source].watches
    return [t for t in dict.fromkeys(config.trials) if watches(t)]


def refresh(
    config: Config,
    store: Store,
    *,
    sources: Iterable[str] | None = None,
    trial_ids: Iterable[str] | None = None,
    trigger: str = "cli",
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    http: httpx.Client | None = None,
    backoff_base: float = 1.0,
    full_sweep: bool = False,
) -> RefreshResult:
    """Refresh the watched trials of the chosen sources and record what changed.

    For a source with query watches (``[[watch.queries]]``) this also brings them up
    to date (:func:`pipeline.mirror.refresh_queries`; ``full_sweep`` forces their sweep
    of IDs) unless ``trial_ids`` narrows the run to some trials.
    """
    stop = should_stop or (lambda: False)
    chosen = [s for s in (sources or config.enabled_sources()) if config.sources[s].enabled]
    store.close_stale_runs()
    store.save_watch_tags(dict(config.tags))  # what `serve` facets and feeds by
    own_http = http is None
    fetch_rows: list[dict] = []
    rows_lock = threading.Lock()

    with recorded_run(store, chosen, trigger, pid=os.getpid(), fetch_log_days=config.fetch_log_days) as run:
        run_id = run.run_id
        store.start_run_sources(run_id, chosen)
        result = RefreshResult(run_id=run_id)
        run.counts = result.counts

        def on_request(row: dict) -> None:
            row["run_id"] = run_id
            row["fetched_at"] = utcnow()
            with rows_lock:
                fetch_rows.append(row)

        def flush_log() -> None:
            with rows_lock:
                rows = list(fetch_rows)
                fetch_rows.clear()
            store.log_fetches(rows)

        run.before_finish = flush_log
        http = http or build_http_client()
        try:
            for name in chosen:
                source = SOURCES[name]
                cfg = config.sources[name]
                if trial_ids is not None:
                    ids = [t for t in trial_ids if source.watches(t)]
                else:
                    ids = watched_ids(config, name)
                run_queries = source.queries is not None and trial_ids is None and bool(config.queries)
                if not ids and not run_queries:
                    continue
                client = RegistryClient(
                    cfg,
                    http,
                    on_request=on_request,
                    deadline=time.monotonic() + cfg.run_budget,
                    backoff_base=backoff_base,
                    should_stop=stop,
                )
                tally = Tally()
                if ids:
                    tally.add(_refresh_source(store, client, source, ids, run_id, progress=progress, stop=stop,
                                              flush_log=flush_log))
                if run_queries and not stop() and client.unreachable is None:
                    tally.add(
                        refresh_queries(
                            config, store, client, source, run_id,
                            progress=progress, stop=stop, flush_log=flush_log, full_sweep=full_sweep,
                        )
                    )
                tally.counts["requests"] = client.requests
                if client.unreachable is not None:
                    u = client.unreachable
                    result.unreachable[name] = (u.base_url, u.cause, len(ids))
                result.by_source[name] = tally.counts
                store.finish_run_source(run_id, name, tally.counts,
                                        note=next(iter(result.unreachable_lines(name)), None))
                result.counts.update(tally.counts)
                result.failures.extend(tally.failures)
                result.not_found.extend(tally.not_found)
                result.interrupted = result.interrupted or tally.interrupted
                if stop():
                    result.interrupted = True
                    break
        finally:
            if own_http:
                http.close()
        trial_events = update_trials(store, flags=config.flags, run_id=run_id)
        result.counts["raised"] += trial_events.raised
        result.counts["cleared"] += trial_events.cleared
        result.counts["first_seen_flags"] += trial_events.baseline
        run.interrupted = result.interrupted
        if result.unreachable:
            run.note = "; ".join(result.unreachable_lines())
    return result


def _budget_spent(client: RegistryClient) -> bool:
    """True once the source's ``run_budget`` is used up: start no new request."""
    return client.deadline is not None and time.monotonic() > client.deadline


def _refresh_source(
    store: Store,
    client: RegistryClient,
    source: Source,
    ids: list[str],
    run_id: int,
    *,
    progress: ProgressFn | None,
    stop: Callable[[], bool],
    flush_log: Callable[[], None],
) -> Tally:
    tally = Tally()
    counts = tally.counts
    name = source.name
    # Least recently checked first (never checked before all): a run cut short by its
    # budget defers the rest, and the next run starts with what was deferred.  "Least
    # recently" is by run number, not by the clock: a clock that ran ahead for a while
    # must not push the trials it stamped to the back for months.
    checked = store.check_order(name)
    ids = sorted(ids, key=lambda t: checked.get(t) or (0, ""))
    states = store.load_states(name, ids)
    pending: list[Update] = []
    done = 0
    total = len(ids)
    handled: set[str] = set()

    vanished: list[Update] = []  # present -> missing, held for the mass-disappearance guard
    answered_present = 0          # trials present before that the registry answered for

    def save(updates: list[Update]) -> None:
        store.save_updates(updates, run_id)

    def account(update: Update) -> None:
        nonlocal pending
        tally.count(update)
        if update.new_snapshot or update.changes:
            save(pending)
            pending = []
            save([update])
        else:
            pending.append(update)
            if len(pending) >= BATCH:
                save(pending)
                pending = []
                flush_log()

    def cut_short() -> bool:
        return stop() or _budget_spent(client) or client.unreachable is not None

    for fetched in source.fetch(client, ids, should_stop=cut_short):
        if fetched.trial_id in handled:
            continue
        handled.add(fetched.trial_id)
        prior = states.get(fetched.trial_id)
        update = plan_fetched(store.load_snapshot, prior, fetched, source)
        if update.outcome == "failed" and (stop() or _budget_spent(client)):
            handled.discard(fetched.trial_id)  # cut short by the stop or the budget, not the registry: deferred
            if stop():
                break
            continue
        if prior is not None and prior.state == "present" and update.outcome != "failed":
            answered_present += 1
        if update.outcome == "missing" and update.changes:
            vanished.append(update)
        else:
            account(update)
        done += 1
        if progress:
            progress(name, done, total)
        if stop():
            break
    for update in judge_vanished(vanished, answered_present, states):
        account(update)
    if client.unreachable is not None and not stop():
        # Given up for the run: every trial not handled fails with the reason (never
        # "missing", never deferred as if the budget ran out; no answer for the vanish guard).
        error = f"SourceUnreachable: {client.unreachable}"
        now = utcnow()
        for trial_id in ids:
            if trial_id not in handled:
                handled.add(trial_id)
                account(plan_failed(trial_id, name, error, now))
    save(pending)
    flush_log()
    counts["deferred"] += total - len(handled)
    if counts["reappeared"]:
        counts["changed"] += counts["reappeared"]
    return tally
