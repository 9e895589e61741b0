"""A run's row in the ``runs`` table, written once for every kind of run.

:func:`recorded_run` starts the row, and when the work ends marks it ``finished``
(or ``interrupted`` when the work says it was cut short), ``interrupted`` on Ctrl-C
and ``failed`` on any other exception: never ``finished`` after an exception.  When
the database itself cannot be written (:class:`~pipeline.errors.StoreError`: locked,
disk full) the row is left ``running``; the next refresh marks it interrupted.
refresh, ``import-ictrp`` and ``backfill`` all record their runs with it.
"""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping

from pipeline.errors import StoreError
from pipeline.store import Store

log = logging.getLogger(__name__)


@dataclass
class RunRecord:
    """The open run: its id, and what the work sets for the row written at the end."""

    run_id: int
    counts: Mapping[str, int] = field(default_factory=Counter)
    interrupted: bool = False
    note: str | None = None
    #: Called before the row is finished (not when the store failed): e.g. flush the fetch log.
    before_finish: Callable[[], None] | None = None
    #: Prune the fetch log to this many days when the row is finished (None: keep all).
    fetch_log_days: int | None = None


@contextmanager
def recorded_run(
    store: Store,
    sources: Iterable[str],
    trigger: str,
    *,
    pid: int | None = None,
    note: str | None = None,
    fetch_log_days: int | None = None,
) -> Iterator[RunRecord]:
    """Record the run of the ``with`` block (see the module docstring).

    With ``fetch_log_days``, the fetch log is pruned to that many days when the run ends.
    """
    run = RunRecord(store.start_run(list(sources), trigger, pid), note=note, fetch_log_days=fetch_log_days)
    try:
        yield run
    except StoreError:
        raise  # the row would only wait out the busy timeout and fail again
    except KeyboardInterrupt:
        _finish(store, run, "interrupted")
        raise
    except BaseException:
        _finish(store, run, "failed")
        raise
    _finish(store, run, "interrupted" if run.interrupted else "finished")


def _finish(store: Store, run: RunRecord, status: str) -> None:
    try:
        if run.before_finish is not None:
            run.before_finish()
    finally:
        try:
            store.finish_run(run.run_id, dict(run.counts), status=status, note=run.note, fetch_log_days=run.fetch_log_days)
        except StoreError as exc:
            log.warning("run %s: cannot record its end (%s); the next refresh marks it interrupted", run.run_id, exc)
