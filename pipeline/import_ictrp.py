"""``trialwatch import-ictrp FILE``: WHO ICTRP export files into the store.

An export (the portal's XML or CSV, or WHO's weekly COVID-19 CSV; the format is
judged by the content) goes into the same snapshots and change log as the
``Trial2.aspx`` pages (source ``who``): each trial is normalized, compared with its
stored snapshot and written in its own transaction, its row kept as the raw payload
(``raw_format`` ``csv`` or ``xml``, a one-trial export file a better parser can re-read).
Importing one week's file and then the next records the real changes between them.

Dates: a change between two exports is dated by the registry, not by the import.
Its ``registry_date`` (on the change and on the new snapshot) is the record's "last
refreshed" date in the newer export, the day WHO last took the record from its
registry; ``changes``, ``history`` and reports show that date.  ``detected_at`` stays
the time of the import, so ``report --since 7d`` and ``changes --since`` (windows over
what trialwatch recorded) still find a change imported today from a 2020 export, and
alerts go out once (their cursor is the change id).  A record without a "last
refreshed" date is dated by the import.

What an import is not:

* Not a statement about trials it does not list.  An export is a search result (a
  query, a date range, a topic), not the registry: a trial absent from a later file
  is NOT recorded as missing.  Only a page fetch that the portal answers with its
  not-found page makes a WHO trial missing.
* Not a source of changes for fields the file cannot carry.  The COVID-19 CSVs have
  no secondary outcomes, funding or ethics review, for example; such fields keep the
  stored values (from a page fetched before) instead of showing as removed.  See
  :func:`pipeline.sources.who.export.export_fields`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.clock import utcnow
from pipeline.diff import IDENTITY_FIELDS, content_hash
from pipeline.errors import InvalidTrialId
from pipeline.plan import Tally, plan_found
from pipeline.run_record import recorded_run
from pipeline.sources import who
from pipeline.sources.who.export import ExportStats, detect_export_format, iter_export_rows
from pipeline.store import Store
from pipeline.trial_events import update_trials
from pipeline.trial_ids import normalize_trial_id

SOURCE = who.SOURCE


@dataclass
class ImportResult:
    """What an import did: counts per outcome, the rows it could not take, its run."""

    run_id: int
    format: str
    tally: Tally = field(default_factory=Tally)
    stats: ExportStats = field(default_factory=ExportStats)

    @property
    def counts(self) -> Counter:
        return self.tally.counts

    @property
    def failures(self) -> list[tuple[str, str]]:
        """(trial ID, error) of every row that could not be taken."""
        return [(trial_id, error) for trial_id, _source, error in self.tally.failures]

    def summary(self) -> str:
        c = self.counts
        text = (
            f"{self.format.upper()} export: {c['rows']} trials, new {c['new']}, unchanged {c['unchanged']}, "
            f"changed {c['changed']} ({c['changes']} field changes)"
        )
        if c["duplicates"]:
            text += f", duplicate rows skipped {c['duplicates']}"
        if self.stats.skipped:
            text += f", rows without a TrialID skipped {self.stats.skipped}"
        if c["failed"]:
            text += f", failed {c['failed']}"
        if c["raised"] or c["cleared"] or c["first_seen_flags"]:
            text += (f"; discrepancies and flags: {c['raised']} raised, {c['cleared']} resolved, "
                     f"{c['first_seen_flags']} open on first sight")
        return text


def carry_over(record: dict, old: dict | None, fields: frozenset[str]) -> dict:
    """``record`` with the fields the export cannot carry taken from ``old``."""
    if not old:
        return record
    out = dict(record)
    for key, value in old.items():
        if key not in fields and key not in IDENTITY_FIELDS:
            out[key] = value
    return out


def import_export(
    store: Store,
    data: bytes,
    *,
    trigger: str = "import",
    note: str | None = None,
    flags: dict[str, int] | None = None,
) -> ImportResult:
    """Import an export's bytes; one transaction per trial, one ``runs`` row for the file.

    Then the trials are re-linked and their discrepancies and flags re-judged
    (:func:`pipeline.trial_events.update_trials`, with the ``[flags]`` thresholds).
    """
    fmt = detect_export_format(data)
    with recorded_run(store, [SOURCE.name], trigger, note=note) as run:
        result = ImportResult(run_id=run.run_id, format=fmt)
        run.counts = result.counts
        _import_rows(store, data, result, run.run_id)
        events = update_trials(store, flags=flags, run_id=run.run_id)
        result.counts["raised"] += events.raised
        result.counts["cleared"] += events.cleared
        result.counts["first_seen_flags"] += events.baseline
    return result


def _import_rows(store: Store, data: bytes, result: ImportResult, run_id: int) -> None:
    tally, counts = result.tally, result.counts
    seen: set[str] = set()
    for record, raw, fields in iter_export_rows(data, result.format, stats=result.stats):
        counts["rows"] += 1
        try:
            trial_id = normalize_trial_id(record["trial_id"])
        except InvalidTrialId as exc:
            tally.fail(str(record["trial_id"]), SOURCE.name, f"not a trial ID trialwatch knows: {exc}")
            continue
        if trial_id in seen:
            counts["duplicates"] += 1
            continue
        seen.add(trial_id)
        record["trial_id"] = trial_id
        state = store.load_state(trial_id, SOURCE.name)
        old = state.record if state is not None else None
        record = carry_over(record, old, fields)
        update = plan_found(
            state,
            record,
            old_record=old,
            raw=raw,
            raw_format=result.format,
            parser_version=SOURCE.parser_version,
            now=utcnow(),
            new_hash=content_hash(record),
        )
        if update.outcome == "unchanged":
            update.raw = None
        else:
            update.registry_date = record.get("last_refreshed") or None
        store.save_update(update, run_id)
        tally.count(update)


def import_export_file(store: Store, path: str | Path, **kwargs) -> ImportResult:
    """Read ``path`` and import it (see :func:`import_export`)."""
    path = Path(path)
    data = path.read_bytes()
    return import_export(store, data, note=kwargs.pop("note", f"import-ictrp {path.name}"), **kwargs)
