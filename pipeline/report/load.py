"""Reading a report's rows from the store (the one part of reporting that does I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.report.model import Report, build_report
from pipeline.report.window import Since
from pipeline.store import Store


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
    title: str = "trialwatch report",
) -> LoadedReport:
    """The changes and failure events in the window, as a :class:`Report`.

    The ids are fixed before reading, so changes a concurrent refresh adds meanwhile
    are neither shown nor skipped: the next ``--since last`` report has them.
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
    report = build_report(
        changes, failures, titles=store.trial_titles(), generated_at=generated_at, since=since.describe(), title=title
    )
    return LoadedReport(report, upto_change, upto_failure)
