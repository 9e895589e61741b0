"""Bulk data in and out of the store: backfill, import-ictrp, export, search, queries.

(The query watches themselves are :mod:`pipeline.mirror`.)
"""

from __future__ import annotations

import csv
import json
import signal
import sys
from pathlib import Path

import click

from pipeline.cli.common import SOURCE_CHOICE, failure_lines, wait_option
from pipeline.render_table import escape_controls
from pipeline.record import COMMON_FIELDS
from pipeline.sources import SOURCES, Source
from pipeline.trial_ids import normalize_trial_id, registry_of


def register(cli: click.Group) -> None:
    cli.add_command(backfill_cmd)
    cli.add_command(import_ictrp_cmd)
    cli.add_command(export_cmd)
    cli.add_command(search_cmd)
    cli.add_command(queries_cmd)


def history_source(trial_id: str) -> Source | None:
    """The first source that watches ``trial_id`` and keeps a version history."""
    return next((s for s in SOURCES.values() if s.history is not None and s.watches(trial_id)), None)


def _history_ids(ctx, param, values):
    out = []
    for value in values:
        trial_id = normalize_trial_id(value)
        if history_source(trial_id) is None:
            keeps = ", ".join(s.label for s in SOURCES.values() if s.history is not None) or "no registry"
            raise click.BadParameter(
                f"{trial_id} is a {registry_of(trial_id)} ID: only {keeps} keeps a version history",
                param_hint="ID",
            )
        out.append(trial_id)
    return tuple(dict.fromkeys(out))


@click.command("backfill")
@click.argument("trial_ids", nargs=-1, required=True, callback=_history_ids)
@click.option("--progress/--no-progress", default=None, help="Show progress (default: on a terminal).")
@wait_option()
@click.pass_obj
def backfill_cmd(app, trial_ids, progress, wait):
    """Load the whole version history of ClinicalTrials.gov trials.

    Every registry version becomes a snapshot dated by the registry, and the changes
    between versions go into the change log back to first registration, marked
    backfilled (alerts never send them).  Running it again adds nothing; a trial
    with a live snapshot keeps it as current.  Then `trialwatch history ID` shows
    when each field changed.  Exits 1 when some trial could not be backfilled, 3 when
    another refresh of the same database is running (see --wait).
    """
    from pipeline.backfill import backfill_trial
    from pipeline.clock import utcnow
    from pipeline.http_client import RegistryClient, build_http_client
    from pipeline.lock import RefreshLock
    from pipeline.progress import Progress
    from pipeline.run_record import recorded_run
    from pipeline.trial_events import update_trials

    config = app.config
    sources = {t: history_source(t) for t in trial_ids}
    names = list(dict.fromkeys(s.name for s in sources.values()))
    show = Progress() if (progress if progress is not None else sys.stderr.isatty()) else None
    failed = 0
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM as Ctrl-C: recorded_run marks the run interrupted
    with RefreshLock(config.database_path, wait=wait), app.store() as store:
        with recorded_run(store, names, "backfill", note="backfill") as run:
            rows: list[dict] = []
            counts = {"fetched": 0, "failed": 0, "requests": 0}
            run.counts = counts

            def on_request(row: dict) -> None:
                rows.append({**row, "run_id": run.run_id, "fetched_at": utcnow()})

            def flush_log() -> None:
                store.log_fetches(rows)
                rows.clear()
                counts["requests"] = sum(c.requests for c in clients.values())

            clients: dict[str, RegistryClient] = {}
            run.before_finish = flush_log
            with build_http_client(max(config.sources[n].timeout for n in names)) as http:
                for i, trial_id in enumerate(trial_ids, 1):
                    source = sources[trial_id]
                    client = clients.get(source.name)
                    if client is None:
                        client = clients[source.name] = RegistryClient(
                            config.sources[source.name], http, on_request=on_request
                        )
                    outcome = backfill_trial(store, client, source, trial_id, run.run_id)
                    flush_log()
                    counts["fetched"] += outcome.stored
                    if show:
                        show.clear()  # the result line starts on a clean line; the next tick redraws
                    if outcome.error:
                        failed += 1
                        counts["failed"] = failed
                        click.echo(f"{trial_id}: failed: {outcome.error}", err=True)
                    else:
                        current = "newest version adopted as current" if outcome.adopted else "current snapshot kept"
                        click.echo(
                            f"{trial_id}: {outcome.versions} versions, {outcome.stored} stored now, "
                            f"{outcome.changes} changes backfilled; {current}"
                        )
                    if show:
                        show("backfill", i, len(trial_ids))
                events = update_trials(store, flags=config.flags, run_id=run.run_id)
                if events.raised or events.cleared:
                    click.echo(f"discrepancies and flags: {events.raised} raised, {events.cleared} resolved")
    if show:
        show.close()
    sys.exit(1 if failed else 0)


@click.command("import-ictrp")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@wait_option()
@click.pass_obj
def import_ictrp_cmd(app, files, wait):
    """Import WHO ICTRP export files (XML or CSV, judged by content).

    Each trial goes into the same snapshots and change log as the WHO portal's
    pages (source "who"), one transaction per trial, its row kept as the raw
    payload.  Import files oldest first: each is compared with what the store holds.
    A trial absent from a later file is NOT marked missing (an export is a search
    result, not the registry), and fields a file cannot carry keep their stored
    values.  Takes the refresh lock like `refresh`: exits 3 when another refresh of
    the same database is running (see --wait).
    """
    from pipeline.errors import ParseError
    from pipeline.import_ictrp import import_export_file
    from pipeline.lock import RefreshLock

    failed = 0
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM as Ctrl-C: the import closes its run
    with RefreshLock(app.config.database_path, wait=wait), app.store() as store:
        for path in files:
            try:
                result = import_export_file(store, path, flags=app.config.flags)
            except ParseError as exc:
                raise click.ClickException(f"{path}: {exc}") from None
            except OSError as exc:
                raise click.ClickException(f"cannot read {path}: {exc.strerror or exc}") from None
            click.echo(f"{path.name}: run {result.run_id}: {result.summary()}")
            for line in failure_lines(((t, path.name, e) for t, e in result.failures), limit=10):
                click.echo(escape_controls(f"  {line}"), err=True)
            failed += len(result.failures)
    sys.exit(1 if failed else 0)


def export_columns(source: str | None) -> list[str]:
    """The CSV columns of ``export --format csv``: common fields, then each source's extras."""
    columns = list(COMMON_FIELDS)
    for name, registry in SOURCES.items():
        if source in (None, name):
            columns += [f for f in registry.extra_fields if f not in columns]
    return columns


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True,
              help="JSON Lines (one normalized record a line) or CSV (one row a record).")
@click.option("--source", type=SOURCE_CHOICE, help="Only this source's records.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (default: standard output).")
@click.option("--include-missing", is_flag=True, help="Also trials the registry no longer returns (last record).")
@click.pass_obj
def export_cmd(app, fmt, source, out_path, include_missing):
    """Export the current mirror: the current record of every trial, streamed.

    JSON Lines give the normalized record as stored; CSV has one column per record
    field (lists of text joined with "; ", structured values as JSON), with the same
    guard as `report --format csv`: control characters shown as U+FFFD, and text a
    spreadsheet would run as a formula given a leading '.
    """
    import orjson

    from pipeline.report.data import csv_cell

    count = 0
    stream = open(out_path, "w", encoding="utf-8", newline="") if out_path else sys.stdout
    try:
        with app.store() as store:
            records = store.iter_current_json(source, include_missing=include_missing)
            if fmt == "jsonl":
                for text in records:
                    stream.write(text)
                    stream.write("\n")
                    count += 1
            else:
                columns = export_columns(source)
                writer = csv.writer(stream, lineterminator="\n")
                writer.writerow(columns)
                for text in records:
                    record = orjson.loads(text)
                    writer.writerow([csv_cell(record.get(c), list_sep="; ") for c in columns])
                    count += 1
    finally:
        if out_path:
            stream.close()
    if out_path:
        click.echo(f"exported {count} records to {out_path}", err=True)


def fts_query(text: str) -> str:
    """User text as an FTS5 query: every word must match (each word quoted, so no syntax)."""
    words = [w for w in "".join(c if c.isalnum() else " " for c in text).split() if w]
    if not words:
        raise click.BadParameter("give at least one word to search for", param_hint="TEXT")
    return " ".join(f'"{w}"' for w in words)


@click.command("search")
@click.argument("text", nargs=-1, required=True)
@click.option("--source", type=SOURCE_CHOICE, help="Only this source's records.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100000), help="At most this many results.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--raw", "raw_query", is_flag=True, help="TEXT is an SQLite FTS5 expression (OR, NEAR, prefix*).")
@click.pass_obj
def search_cmd(app, text, source, limit, as_json, raw_query):
    """Full-text search over titles, conditions and interventions of the mirror.

    Every word must match (in any of the three); best matches first, titles weighing
    most.  With --raw, TEXT is an FTS5 expression such as 'covid OR sars*'.
    """
    from pipeline.render_table import short, table

    joined = " ".join(text)
    match = joined if raw_query else fts_query(joined)
    with app.store() as store:
        store.ensure_search_index()
        rows = store.search(match, limit=limit, source=source)
    for r in rows:
        r["snippet"] = " ".join((r.get("snippet") or "").split())
        r.pop("score", None)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no matches")
        return
    click.echo(
        table(
            ((r["trial_id"], r["source"], r["recruitment_status"] or "-", short(r["title"], 60),
              short(r["snippet"], 60)) for r in rows),
            ["trial", "source", "status", "title", "match"],
        )
    )


@click.command("queries")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--members", "members_of", metavar="NAME",
              help="List the trials matching this query watch, with their titles.")
@click.pass_obj
def queries_cmd(app, as_json, members_of):
    """The query watches and the state of their mirror (members, last sync, last sweep).

    With --members NAME: the trials that match query NAME (at its last sync), with
    their titles and recruitment status.
    """
    from pipeline.mirror import query_key
    from pipeline.render_table import escape_controls, short, table

    config = app.config
    if members_of is not None:
        names = [q.name for q in config.queries]
        if members_of not in names:
            raise click.BadParameter(
                f"no query watch named {members_of!r} (known: {', '.join(names) or 'none'})",
                param_hint="'--members'",
            )
        rows = []
        if config.database_path.exists():
            with app.store() as store:
                rows = store.query_member_rows(members_of)
        if as_json:
            from pipeline.cli.core import _json_out

            _json_out(rows)
            return
        if not rows:
            click.echo(f"query {members_of}: no members yet; run `trialwatch refresh`")
            return
        click.echo(
            table(
                ((r["trial_id"], short(escape_controls(r["title"] or "-"), 60), r["recruitment_status"] or "-", r["first_seen"])
                 for r in rows),
                ["trial", "title", "status", "member_since"],
            )
        )
        return
    stored = {}
    if config.database_path.exists():
        with app.store() as store:
            stored = {q["name"]: q for q in store.query_watches()}
    rows = []
    for q in config.queries:
        st = stored.get(q.name) or {}
        rows.append(
            {
                "name": q.name,
                "params": q.params(),
                "backfill": q.backfill,
                "members": st.get("members", 0),
                "loaded": bool(st.get("loaded_at")) and st.get("params") == query_key(q),
                "last_sync": st.get("last_sync"),
                "sync_date": st.get("sync_date"),
                "last_full_sweep": st.get("last_full_sweep"),
                "data_timestamp": st.get("data_timestamp"),
            }
        )
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no query watches; add a [[watch.queries]] table to the config")
        return
    click.echo(
        table(
            ((r["name"], " ".join(f"{k}={v}" for k, v in r["params"].items()), r["members"],
              r["last_sync"] or "never", r["last_full_sweep"] or "never") for r in rows),
            ["query", "parameters", "members", "last_sync", "last_full_sweep"],
        )
    )
