"""Reading a report's rows from the store (the one part of reporting that does I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from pipeline.report.model import Report, build_report
from pipeline.report.window import Since
from pipeline.store import Store


def load_trial_keys(store: Store) -> Mapping[tuple[str, str], str] | None:
    """Which trial each record belongs to, where the store links records across registries.

    A store with ``trial_key_map()`` (records linked by secondary IDs) says so; without
    it, None: each record is the trial of its ``trial_id`` (:func:`build_report`'s default).
    """
    trial_key_map = getattr(store, "trial_key_map", None)
    return trial_key_map() if callable(trial_key_map) else None


@dataclass
class LoadedReport:
    """A report and, for ``--since last``, the ids the cursor moves to once it is written."""

    report: Report
    upto_change: int
    upto_failure: int


def load_report(
    store: Store,
    since: Since,
    *,
    generated_at: str,
    include_backfilled: bool = False,
    failure_alert_after: int = 3,
    title: str = "trialwatch report",
) -> LoadedReport:
    """The changes and failure events in the window, as a :class:`Report`.

    The ids are fixed before reading, so changes a concurrent refresh adds meanwhile
    are neither shown nor skipped: the next ``--since last`` report has them.

    A date-window report also lists trials still failing (``failure_alert_after`` runs
    or more) whose failure alert came before the window: a weekly report should not
    forget a trial that has been failing for a month.  ``--since last`` reports only
    what is new, so not these.
    """
    upto_change, upto_failure = store.max_ids()
    if since.last:
        after_change, after_failure = store.report_cursor()
        changes = store.changes(after_id=after_change, include_backfilled=include_backfilled)
        failures = store.failure_events(after_id=after_failure, upto_id=upto_failure)
    else:
        changes = store.changes(since=since.at, include_backfilled=include_backfilled)
        failures = store.failure_events(since=since.at, upto_id=upto_failure)
    changes = [c for c in changes if c["id"] <= upto_change]
    if not since.last:
        in_window = {(f["trial_id"], f["source"]) for f in failures if f["kind"] == "failing"}
        failures += [
            {"id": None, "trial_id": t["trial_id"], "source": t["source"], "kind": "still_failing",
             "streak": t["fail_streak"], "error": t["last_error"], "detected_at": t["last_checked"] or generated_at}
            for t in store.failing_trials(failure_alert_after)
            if (t["trial_id"], t["source"]) not in in_window
        ]
    report = build_report(
        changes, failures, titles=store.trial_titles(), trial_keys=load_trial_keys(store),
        generated_at=generated_at, since=since.describe(), title=title,
    )
    return LoadedReport(report, upto_change, upto_failure)
