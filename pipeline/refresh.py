"""One refresh run: fetch every watched trial, compare, store.

This is the function the CLI, the daemon and the demo all call.  For each enabled
source it streams :class:`~pipeline.sources.Fetched` items from the source module,
normalizes each (pure), plans the update against the stored state (pure) and saves
it (one transaction per trial that changed; unchanged trials in batches, since only
timestamps move for them).  A trial that fails is data in the result, never an
exception that aborts the run; a source that fails does not stop the other.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

import httpx

from pipeline.config import Config
from pipeline.diff import content_hash
from pipeline.errors import BlockedPageError, ParseError, StoreError
from pipeline.http_client import RegistryClient, build_http_client
from pipeline.normalize import PARSER_VERSION, normalize_payload, raw_bytes, reparse_raw
from pipeline.sources import Fetched, ctgov, who
from pipeline.clock import utcnow
from pipeline.store import Store
from pipeline.trial_ids import sources_for
from pipeline.plan import TrialState, Update, plan_failed, plan_found, plan_missing, plan_withheld_vanish

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

    @property
    def exit_code(self) -> int:
        return 1 if self.counts["failed"] else 0

    def summary(self) -> str:
        c = self.counts
        text = (
            f"fetched {c['fetched']}, new {c['new']}, unchanged {c['unchanged']}, changed {c['changed']}, "
            f"missing {c['missing']}, failed {c['failed']}"
        )
        if c["reappeared"]:
            text += f", reappeared {c['reappeared']}"
        if c["deferred"]:
            text += f", deferred to next run {c['deferred']}"
        if c["changes"]:
            text += f" ({c['changes']} field changes)"
        queries = [f"{c[k]} {k[8:]}" for k in ("queries_loaded", "queries_synced", "queries_skipped",
                                               "queries_swept", "queries_incomplete", "queries_failed") if c[k]]
        if queries:
            text += "; queries: " + ", ".join(queries)
        if self.interrupted:
            text += " [interrupted]"
        return text


def watched_ids(config: Config, source: str, extra: Iterable[str] = ()) -> list[str]:
    """The trial IDs ``source`` watches: NCT IDs on both sources, others on WHO."""
    ids = list(dict.fromkeys([*config.trials, *extra]))
    return [t for t in ids if source in sources_for(t)]


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
    extra_ids: dict[str, list[str]] | None = None,
    full_sweep: bool = False,
) -> RefreshResult:
    """Refresh the watched trials of the chosen sources and record what changed.

    For ``ctgov`` this also brings the query watches (``[[watch.queries]]``) up to
    date (:func:`pipeline.mirror.refresh_queries`; ``full_sweep`` forces their sweep
    of IDs) unless ``trial_ids`` narrows the run to some trials.
    """
    stop = should_stop or (lambda: False)
    chosen = [s for s in (sources or config.enabled_sources()) if config.sources[s].enabled]
    store.close_stale_runs()
    run_id = store.start_run(chosen, trigger, os.getpid())
    result = RefreshResult(run_id=run_id)
    own_http = http is None
    http = http or build_http_client()
    fetch_rows: list[dict] = []
    store_failed = False
    rows_lock = threading.Lock()

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

    try:
        for source in chosen:
            cfg = config.sources[source]
            if trial_ids is not None:
                ids = [t for t in trial_ids if source in sources_for(t)]
            else:
                ids = watched_ids(config, source, (extra_ids or {}).get(source, ()))
            run_queries = source == "ctgov" and trial_ids is None and bool(config.queries)
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
            counts = Counter()
            if ids:
                counts = _refresh_source(
                    store, client, source, ids, run_id, result, progress=progress, stop=stop, flush_log=flush_log
                )
            if run_queries and not stop():
                from pipeline.mirror import refresh_queries

                counts.update(
                    refresh_queries(
                        config, store, client, run_id, result,
                        progress=progress, stop=stop, flush_log=flush_log, full_sweep=full_sweep,
                    )
                )
            counts["requests"] = client.requests
            result.by_source[source] = counts
            result.counts.update(counts)
            if stop():
                result.interrupted = True
                break
    except StoreError:
        # The database cannot be written (locked by another process, disk full): the
        # fetch log and the run's row would only wait out the busy timeout and fail
        # again.  The run stays 'running'; the next run marks it interrupted.
        store_failed = True
        raise
    finally:
        if own_http:
            http.close()
        if not store_failed:
            try:
                flush_log()
            finally:
                status = "interrupted" if result.interrupted else "finished"
                try:
                    store.finish_run(run_id, result.counts, status=status)
                except StoreError:
                    pass
    return result


def _fetch_iter(client: RegistryClient, source: str, ids: list[str], stop: Callable[[], bool]):
    if source == "ctgov":
        return ctgov.fetch_by_ids(client, ids, should_stop=stop)
    if source == "who":
        return who.fetch_pages(client, ids, should_stop=stop)
    raise ValueError(source)


def _budget_spent(client: RegistryClient) -> bool:
    """True once the source's ``run_budget`` is used up: start no new request."""
    return client.deadline is not None and time.monotonic() > client.deadline


def _refresh_source(
    store: Store,
    client: RegistryClient,
    source: str,
    ids: list[str],
    run_id: int,
    result: RefreshResult,
    *,
    progress: ProgressFn | None,
    stop: Callable[[], bool],
    flush_log: Callable[[], None],
) -> Counter:
    counts: Counter = Counter()
    # Least recently checked first (never checked before all): a run cut short by its
    # budget defers the rest, and the next run starts with what was deferred.  "Least
    # recently" is by run number, not by the clock: a clock that ran ahead for a while
    # must not push the trials it stamped to the back for months.
    checked = store.check_order(source)
    ids = sorted(ids, key=lambda t: checked.get(t) or (0, ""))
    states = store.load_states(source, ids)
    pending: list[Update] = []
    done = 0
    total = len(ids)
    parser_version = PARSER_VERSION[source]
    handled: set[str] = set()

    vanished: list[Update] = []  # present -> missing, held for the mass-disappearance guard
    answered_present = 0          # trials present before that the registry answered for

    def save(updates: list[Update]) -> None:
        store.save_updates(updates, run_id)

    def account(update: Update) -> None:
        nonlocal pending
        counts[update.outcome] += 1
        if update.outcome != "failed":
            counts["fetched"] += update.outcome != "missing"
        else:
            result.failures.append((update.trial_id, source, update.error or ""))
        counts["changes"] += sum(1 for c in update.changes if c.get("kind") == "field")
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

    for fetched in _fetch_iter(client, source, ids, lambda: stop() or _budget_spent(client)):
        if fetched.trial_id in handled:
            continue
        handled.add(fetched.trial_id)
        prior = states.get(fetched.trial_id)
        update = plan_fetched(store, prior, fetched, parser_version)
        if update.outcome == "failed" and stop():
            handled.discard(fetched.trial_id)  # cut short by the stop, not the registry: deferred
            break
        if prior is not None and prior.state == "present" and update.outcome != "failed":
            answered_present += 1
        if update.outcome == "missing" and update.changes:
            vanished.append(update)
        else:
            account(update)
        done += 1
        if progress:
            progress(source, done, total)
        if stop():
            break
    for update in judge_vanished(vanished, answered_present, states):
        account(update)
    save(pending)
    flush_log()
    counts["deferred"] += total - len(handled)
    if counts["reappeared"]:
        counts["changed"] += counts["reappeared"]
    return counts


#: The vanish guard.  A registry that suddenly says it has no such trial for at least
#: MASS_MISSING_MIN trials, and at least MASS_MISSING_SHARE of the present trials it
#: answered for, is more likely broken (a portal serving its not-found template for
#: everything, a search index that lost records) than the trials deleted: those trials
#: fail for the run instead of each getting a "missing" change.  Each trial keeps its
#: own count of ANSWERED runs in a row without it (``vanish_streak``): the deletion is
#: believed only in the MASS_MISSING_CONFIRM-th.  A failed run (503, timeout, blocked
#: page) is no answer: it neither counts nor resets the streak; a run that finds the
#: trial resets it.  While any trial of the source is under suspicion (withheld and
#: not seen since), no vanish is believed early, even in a later run where few trials
#: vanish (a run cut short by its budget answers for few).
MASS_MISSING_MIN = 5
MASS_MISSING_SHARE = 0.5
MASS_MISSING_CONFIRM = 3


def judge_vanished(vanished: list[Update], answered_present: int, states: dict[str, TrialState]) -> list[Update]:
    """The present -> missing updates of one source's run, after the vanish guard (pure)."""
    mass = len(vanished) >= MASS_MISSING_MIN and len(vanished) >= MASS_MISSING_SHARE * answered_present
    suspicion = any(s.vanish_streak > 0 for s in states.values())
    out = []
    for u in vanished:
        prior = states.get(u.trial_id)
        streak = prior.vanish_streak if prior is not None else 0
        if streak + 1 >= MASS_MISSING_CONFIRM or (not mass and not suspicion):
            out.append(u)  # gone in enough answered runs in a row, or one of a few: believe it
            continue
        if mass:
            why = (
                f"the registry says it has no such trial, as it did for {len(vanished)} of the "
                f"{answered_present} present trials it answered for in this run: suspected registry fault"
            )
        else:
            why = "the registry says it has no such trial, during a suspected registry fault"
        out.append(
            plan_withheld_vanish(
                u.trial_id,
                u.source,
                f"{why}, not recorded as a deletion yet (answered runs without it: {streak + 1}; "
                f"believed after {MASS_MISSING_CONFIRM} in a row)",
                u.detected_at or utcnow(),
            )
        )
    return out


def plan_fetched(store: Store, state: TrialState | None, fetched: Fetched, parser_version: int) -> Update:
    """Normalize one fetched item and plan its update (the store is only read)."""
    now = utcnow()
    source, trial_id = fetched.source, fetched.trial_id
    if fetched.status == "failed":
        return plan_failed(trial_id, source, fetched.error or "fetch failed", now)
    if fetched.status == "missing":
        return plan_missing(state, trial_id, source, now)
    try:
        record = normalize_payload(source, trial_id, fetched.payload)
        if record is not None:
            record["trial_id"] = trial_id
            new_hash = content_hash(record)  # also proves the record serializes for the store
    except (ParseError, BlockedPageError) as exc:
        return plan_failed(trial_id, source, f"{type(exc).__name__}: {exc}", now)
    except Exception as exc:  # a parser bug must cost one trial, not the run
        return plan_failed(trial_id, source, f"internal parser error: {type(exc).__name__}: {exc}", now)
    if record is None:
        return plan_missing(state, trial_id, source, now)
    old_record = None
    if state is not None and state.snapshot_id is not None and new_hash != state.content_hash:
        stored = store.load_snapshot(state.snapshot_id, with_raw=False)  # the raw only if needed below
        if stored is not None:
            old_record = stored["record"]
            if stored.get("parser_version") != parser_version:
                stored = store.load_snapshot(state.snapshot_id) or stored
                reread = reparse_raw(source, trial_id, stored.get("raw"), stored.get("raw_format"))
                if reread is not None:
                    reread["trial_id"] = trial_id
                    old_record = reread
    needs_raw = state is None or state.snapshot_id is None or new_hash != state.content_hash
    return plan_found(
        state,
        record,
        old_record=old_record,
        raw=raw_bytes(source, fetched.payload) if needs_raw else None,
        raw_format=fetched.raw_format,
        parser_version=parser_version,
        now=now,
        new_hash=new_hash,
    )
