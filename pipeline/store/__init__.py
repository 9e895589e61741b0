"""The SQLite store: the only package that touches the database.

One file, opened through sqlite-utils, in WAL mode.  Tables (see :mod:`.schema` and
the README's schema section for every column):

``trials``     current state of each trial per source (present / missing), its current
               snapshot and content hash, failure streak.
``snapshots``  a version of a trial's normalized record, written only when the content
               hash changes, with the raw payload zlib-compressed so a better parser can
               re-read it later.
``changes``    field-level changes, each pointing at the snapshot it led to.
``runs``       one row per refresh run with its counts.
``fetch_log``  one row per HTTP request: URL, status, attempts, time, error.
``meta``       small key/value state (schema version, report cursors, data timestamps).
``failure_events``  a trial that began failing run after run ("failing"), or recovered
               ("recovered"): raised once per streak, delivered like changes.
``channels``   one row per configured alert channel: how far it has been served
               (cursors over ``changes`` and ``failure_events``) and its last outcome.
``deliveries`` which change or failure event went to which channel, and when.
``trial_links`` which records describe the same trial (its trial key).
``trial_flags`` discrepancies between copies and integrity flags, open and cleared.
``watch_tags`` the config's ``[watch.tags]`` as of the last run (views: ``current_trials``,
               ``change_log``, readable rows for ``trialwatch serve`` and any SQL user).

A trial's snapshot, its changes and its ``trials`` row are written in one
transaction (:meth:`Store.save_update`): a crash leaves either all of them or none.

:class:`Store` is made of one part per concern:

=============  ===============================================================
``base``       connection, transactions, meta, schema version, file health
``schema``     the schema (in one place) and the migrations of older databases
``views``      the schema's readable views (``current_trials``, ``change_log``) and tags
``runs``       runs and the fetch log
``trials``     the write path (snapshot, changes, state) and trial reads
``failures``   failure streak alerts
``delivery``   report cursor, alert channels, deliveries
``queries``    query watches and their members
``backfill``   registry history versions
``search``     full-text search, streaming current records for export
``links``      one trial across registries: links, discrepancies and integrity flags
=============  ===============================================================

Every public method turns SQLite's errors into a :class:`~pipeline.errors.StoreError`
with a sentence a person can act on (locked, disk full, read-only, corrupt).

sqlite-utils does the inserts and upserts of the cold paths (runs, fetch log, meta,
channels, query watches, backfills) and the migrations' index and table changes.
Plain SQL remains where sqlite-utils has no equivalent or costs too much: the hot
write path (see :mod:`.trials`), updates computed from the row itself (cursors that
only move forward with ``MAX()``/compare-and-set, failure streaks, stale runs), the
FTS5 queries and triggers, and the reads, which are filtered SELECTs.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

from pipeline.store.backfill import BackfillMixin
from pipeline.store.base import StoreBase, describe_error, translate_errors
from pipeline.store.delivery import DeliveryMixin
from pipeline.store.failures import FailuresMixin
from pipeline.store.flags import FlagsMixin
from pipeline.store.links import LinksMixin
from pipeline.store.queries import QueriesMixin
from pipeline.store.runs import RunsMixin
from pipeline.store.migrations import MIGRATIONS
from pipeline.store.schema import SCHEMA, SCHEMA_VERSION
from pipeline.store.search import SearchMixin, search_texts
from pipeline.store.trials import TrialsMixin

if TYPE_CHECKING:
    from pipeline.config import Config

__all__ = ["Store", "open_store", "search_texts", "describe_error", "SCHEMA", "SCHEMA_VERSION", "MIGRATIONS"]


class Store(
    RunsMixin, QueriesMixin, TrialsMixin, FailuresMixin, DeliveryMixin, BackfillMixin, SearchMixin, LinksMixin,
    FlagsMixin, StoreBase,
):
    """The database of one trialwatch installation."""

    def __enter__(self) -> "Store":
        return self


for _name, _member in list(inspect.getmembers(Store, inspect.isfunction)):
    if not _name.startswith("_") and _name not in ("close",):
        setattr(Store, _name, translate_errors(_member))


def open_store(config: "Config") -> Store:
    """The store of ``config``: its database path, waiting at most ``database.busy_timeout`` for a lock."""
    return Store(config.database_path, timeout=config.busy_timeout)
