"""The everyday commands: refresh, show, changes, history, watch."""

from __future__ import annotations

import json
import re
import signal
import sys
import threading

import click

from pipeline.cli.common import SOURCE_CHOICE, check_sources_enabled, failure_lines, wait_option
from pipeline.cli.options import (
    SINCE_HELP,
    full_option,
    limit_option,
    output_style,
    significance_option,
    since_option,
)
from pipeline.errors import ConfigError, InvalidTrialId
from pipeline.render_table import changes_table, describe_change, escape_controls, record_lines, short, table
from pipeline.codec import change_json
from pipeline.sources import SOURCES, sources_for
from pipeline.trial_ids import normalize_trial_id, registry_of

def trial_id_arg(ctx, param, value):
    """Click callback: validate one or many trial IDs (exit 2 on a bad one)."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        return tuple(normalize_trial_id(v) for v in value)
    return normalize_trial_id(value)


def _json_out(value) -> None:
    text = json.dumps(value, ensure_ascii=False, indent=2)
    # json escapes C0 controls but not DEL and C1 (a CSI is one of them): escape them
    # too, so registry text piped to a terminal cannot carry escape sequences.
    click.echo(_C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


_C1 = re.compile("[\x7f-\x9f]")


class StopFlag:
    """Set by SIGTERM/SIGINT: the trial in hand finishes its transaction, then the run stops."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self) -> bool:
        return self.event.is_set()

    def install(self) -> None:
        def handler(signum, frame):
            if self.event.is_set():
                raise KeyboardInterrupt
            self.event.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def register(cli: click.Group) -> None:
    cli.add_command(refresh_cmd)
    cli.add_command(show_cmd)
    cli.add_command(changes_cmd)
    cli.add_command(history_cmd)
    cli.add_command(watch_group)


@click.command("refresh")
@click.option("--source", "sources", type=SOURCE_CHOICE, multiple=True, help="Only this source (repeatable).")
@click.option("--trial", "trials", multiple=True, callback=trial_id_arg, help="Only this watched trial (repeatable).")
@wait_option()
@click.option("--progress/--no-progress", default=None, help="Show progress (default: on a terminal).")
@click.option("--full-sweep", is_flag=True, help="Also sweep every query watch's IDs now (finds deleted records).")
@click.pass_obj
def refresh_cmd(app, sources, trials, wait, progress, full_sweep):
    """Fetch every watched trial and record what changed.

    Exits 0 when every trial was fetched or found missing, 1 when the run finished
    but some trials failed, 2 on a usage or config error, 3 when another refresh of
    the same database is running.
    """
    from pipeline.lock import RefreshLock
    from pipeline.progress import Progress
    from pipeline.refresh import refresh, watched_ids

    config = app.config
    check_sources_enabled(config, sources)
    if trials:
        watched = {t for s in SOURCES for t in watched_ids(config, s)}
        unknown = [t for t in trials if t not in watched]
        if unknown:
            raise ConfigError(
                f"not on the watchlist: {', '.join(unknown)} (add with `trialwatch watch add ID`)", "watch.trials"
            )
    show = Progress() if (progress if progress is not None else sys.stderr.isatty()) else None
    stop = StopFlag()
    stop.install()
    with RefreshLock(config.database_path, wait=wait):
        with app.store() as store:
            result = refresh(
                config,
                store,
                sources=list(sources) or None,
                trial_ids=list(trials) or None,
                progress=show,
                should_stop=stop,
                full_sweep=full_sweep,
            )
            # Failure alerts are raised now, not when `report` or the daemon runs next.
            events = store.note_failure_streaks(config.failure_alert_after)
    if show:
        show.close()
    for line in result.unreachable_lines():
        click.echo(escape_controls(line), err=True)
    for line in failure_lines(result.listed_failures()):
        click.echo(escape_controls(line), err=True)
    for line in failure_alert_lines(events, config.failure_alert_after):
        click.echo(escape_controls(line), err=True)
    click.echo(f"run {result.run_id}: {result.summary()}")
    sys.exit(result.exit_code)


def failure_alert_lines(events: list[dict], threshold: int) -> list[str]:
    """What the failure alerts a run raised say, a line per source and kind (pure)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for e in events:
        groups.setdefault((e["kind"], e["source"]), []).append(e["trial_id"])
    lines = []
    for (kind, source), ids in groups.items():
        shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        if kind == "failing":
            lines.append(f"failure alert raised ({source}): {shown} failed {threshold} or more runs in a row "
                         "(sent by `trialwatch deliver` or the daemon)")
        else:
            lines.append(f"recovered ({source}): {shown}")
    return lines


@click.command("show")
@click.argument("trial_id", callback=trial_id_arg)
@click.option("--source", type=SOURCE_CHOICE,
              help="Which registry's copy (default: the first source that watches the ID).")
@click.option("--json", "as_json", is_flag=True, help="Print the normalized record as JSON.")
@full_option
@click.pass_obj
def show_cmd(app, trial_id, source, as_json, full):
    """Print the current normalized record of a trial."""
    holders = sources_for(trial_id)
    if source is not None and source not in holders:
        # Ask the sources which IDs they hold: ChiCTR trials are not on ClinicalTrials.gov.
        kind = registry_of(trial_id) or "this registry's"
        raise click.ClickException(
            f"{kind} trials are not on {SOURCES[source].label}: {trial_id} is not a trial it holds"
            + (f"; try --source {' or --source '.join(holders)}" if holders else "")
        )
    source = source or holders[0]
    with app.store() as store:
        state = store.load_state(trial_id, source)
    if state is None or state.record is None:
        if state is not None and state.state == "missing" and state.snapshot_id is None:
            raise click.ClickException(
                f"{trial_id} was not found in the registry ({SOURCES[source].label}): it has never returned "
                "this ID; check it"
            )
        if state is not None and state.state == "missing":
            raise click.ClickException(f"{trial_id} is missing from {source} (the registry no longer returns it)")
        raise click.ClickException(
            f"no stored record of {trial_id} from {source}; watch it and run `trialwatch refresh` first"
        )
    if as_json:
        _json_out(state.record)
    else:
        width, style = output_style(full)
        if state.state == "missing":
            click.echo(f"# {trial_id} is MISSING from {source}; last stored record:")
        click.echo(record_lines(state.record, width=width, style=style))


@click.command("changes")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@since_option(help="Only changes detected since then: " + SINCE_HELP + ", or 'last' (not yet reported by "
              "`report --since last`; the report cursor is not moved).")
@click.option("--trial", "trial_id", callback=trial_id_arg, help="Only this trial.")
@click.option("--source", type=SOURCE_CHOICE, help="Only this source.")
@significance_option
@click.option("--details", is_flag=True,
              help="Also list 'detail' rows: the registry's own wording changing along with its normalized field.")
@limit_option(help="Only the most recent N changes.")
@click.option("--newest-first", is_flag=True, help="List the most recent change first (default: oldest first).")
@full_option
@click.pass_obj
def changes_cmd(app, as_json, since, trial_id, source, significance, details, limit, newest_first, full):
    """List recorded changes, oldest first (--newest-first: most recent first)."""
    with app.store() as store:
        after_id = store.report_cursor()[0] if since is not None and since.last else None
        rows = store.changes(
            since=since.at if since is not None else None,
            trial_id=trial_id,
            source=source,
            after_id=after_id,
            include_details=details,
        )
    if significance:
        wanted = {s.lower() for s in significance}
        rows = [r for r in rows if r["significance"] in wanted]
    if limit:
        rows = rows[-limit:]
    if newest_first:
        rows.reverse()
    if as_json:
        _json_out([change_json(r) for r in rows])
    else:
        width, style = output_style(full)
        click.echo(changes_table(rows, width=width, style=style))


@click.command("history")
@click.argument("trial_id", callback=trial_id_arg)
@click.option("--source", type=SOURCE_CHOICE, help="Only this source.")
@click.option("--json", "as_json", is_flag=True, help="Print versions and changes as JSON (with database ids).")
@full_option
@click.pass_obj
def history_cmd(app, trial_id, source, as_json, full):
    """The versions of one trial over time, and what changed in each.

    Versions are numbered 1..N per source, oldest first.  A version both a refresh
    and a backfill saw is listed once.  Dates are UTC days: the registry's date of
    the version when known, else the day trialwatch first fetched it.
    """
    from pipeline.history_view import Event, build_history, history_json

    with app.store() as store:
        versions = store.snapshots_of(trial_id, source)
        rows = store.changes(trial_id=trial_id, source=source)
        last_updated = store.snapshot_last_updated(trial_id) if versions else {}
    if not versions and not rows:
        raise click.ClickException(f"nothing stored for {trial_id}; is it watched and refreshed?")
    history = build_history(versions, rows, last_updated)
    if as_json:
        _json_out(history_json(trial_id, history, change_json))
        return
    width, style = output_style(full)
    for src, entries in history.items():
        count = sum(1 for e in entries if not isinstance(e, Event))
        click.echo(style.paint(f"{trial_id} on {src}: {count} version{'s' if count != 1 else ''}", "head"))
        number_width = len(str(count)) + 1
        for e in entries:
            day = (e.when or "?")[:10]
            if isinstance(e, Event):
                label = "-".ljust(number_width)
                click.echo(f"  {label}  {day}  {describe_change(e.change).render(style)}")
                continue
            what = "first version" if e.number == 1 else f"{len(e.changes)} change{'s' if len(e.changes) != 1 else ''}"
            seen = []
            if e.backfilled:
                seen.append("backfilled")
                if e.seen_live_at:
                    seen.append(f"also fetched {e.seen_live_at[:10]}")
            note = f"  [{'; '.join(seen)}]" if seen else ""
            click.echo(f"  {style.paint(f'v{e.number}'.ljust(number_width), 'id')}  {day}  {what}{note}")
            for c in e.changes:
                head = f"      [{c['significance']}] {escape_controls(c['field'])}: "
                room = None if width is None else max(width - len(head), 24)
                click.echo(head + describe_change(c, room).render(style))


@click.group("watch")
def watch_group():
    """Add, remove or list watched trials (edits the config file in place)."""


@watch_group.command("add")
@click.argument("trial_ids", nargs=-1)
@click.option("--tag", "tags", multiple=True, metavar="T",
              help="Also list the trials under this tag ([watch.tags] in the config; repeatable).")
@click.option("--from", "from_file", type=click.File("r", encoding="utf-8"), metavar="FILE",
              help="Read trial IDs from FILE ('-': standard input), one per line; '#' starts a comment.")
@click.pass_obj
def watch_add(app, trial_ids, tags, from_file):
    """Watch these trials (NCT IDs on both registries, others on the WHO portal).

    IDs come from the arguments, from --from FILE, or from standard input when an
    argument is '-' (one ID per line, '#' comments, blank lines skipped).  Every ID is
    checked first: a bad one is reported with its line number and nothing is written.
    All are added in one edit of the config file.
    """
    from pipeline.watchlist import add_trials, check_tag, parse_id_lines

    ids: list[str] = []
    errors: list[str] = []
    bulk = from_file is not None or "-" in trial_ids
    for value in trial_ids:
        if value == "-":
            got, bad = parse_id_lines(sys.stdin.read(), "<stdin>")
            ids += got
            errors += bad
            continue
        ids.append(normalize_trial_id(value))  # a bad argument: its own one-line error, exit 2
    if from_file is not None:
        name = "<stdin>" if from_file.name == "<stdin>" else from_file.name
        got, bad = parse_id_lines(from_file.read(), name)
        ids += got
        errors += bad
    if errors:
        shown = errors[:20] + ([f"... and {len(errors) - 20} more"] if len(errors) > 20 else [])
        raise InvalidTrialId("not trial IDs, nothing was added:\n  " + "\n  ".join(shown))
    if not ids:
        raise click.UsageError("no trial IDs given (arguments, --from FILE, or '-' for standard input)")
    for tag in tags:
        try:
            check_tag(tag)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="'--tag'") from None
    app.config  # validate the file first: never edit a broken config
    ids = list(dict.fromkeys(ids))
    added = add_trials(app.config_path, ids, tags)
    tag_note = f" (tagged {', '.join(tags)})" if tags else ""
    if bulk:
        click.echo(f"added {len(added)} trials, {len(ids) - len(added)} already watched{tag_note}")
        return
    for t in ids:
        click.echo(f"{'added' if t in added else 'already watched'}: {t} ({', '.join(sources_for(t))}){tag_note}")


@watch_group.command("remove")
@click.argument("trial_ids", nargs=-1, required=True, callback=trial_id_arg)
@click.pass_obj
def watch_remove(app, trial_ids):
    """Stop watching these trials (their stored history is kept)."""
    from pipeline.watchlist import remove_trials

    app.config
    removed = remove_trials(app.config_path, list(trial_ids))
    for t in trial_ids:
        click.echo(f"{'removed' if t in removed else 'not watched'}: {t}")


@watch_group.command("list")
@click.option("--tag", "tag", metavar="T", help="Only the trials under this tag ([watch.tags]).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_obj
def watch_list(app, tag, as_json):
    """The watched trials: title, state per source (present, missing, pending), last checked, tags.

    'pending' is a trial not fetched yet (or that only ever failed).
    """
    config = app.config
    trials = config.trials
    if tag is not None:
        if tag not in config.tags:
            raise click.BadParameter(f"no tag {tag!r} in [watch.tags] (known: {', '.join(sorted(config.tags)) or 'none'})",
                                     param_hint="'--tag'")
        trials = tuple(t for t in config.tags[tag])
    tags_of: dict[str, list[str]] = {}
    for name, ids in sorted(config.tags.items()):
        for t in ids:
            tags_of.setdefault(t, []).append(name)
    states = {}
    if config.database_path.exists():
        with app.store() as store:
            for row in store.trials():
                states[(row["trial_id"], row["source"])] = row
    rows = []
    for t in trials:
        for s in sources_for(t):
            st = states.get((t, s), {})
            rows.append(
                {
                    "trial_id": t,
                    "source": s,
                    "title": st.get("title"),
                    "state": ("not found" if st.get("state") == "missing" and st.get("snapshot_id") is None
                              else st.get("state", "pending")),
                    "recruitment_status": st.get("recruitment_status"),
                    "last_checked": st.get("last_checked"),
                    "fail_streak": st.get("fail_streak", 0),
                    "tags": tags_of.get(t, []),
                    "watched": t in config.trials,
                }
            )
    if as_json:
        _json_out(rows)
        return
    if not rows:
        click.echo(f"no trials tagged {tag}" if tag else "nothing watched; add trials with `trialwatch watch add ID`")
        return
    click.echo(
        table(
            ((r["trial_id"], r["source"], short(escape_controls(r["title"] or "-"), 50), r["state"], r["recruitment_status"] or "-",
              r["last_checked"] or "-", ", ".join(r["tags"]) or "-") for r in rows),
            ["trial", "source", "title", "state", "status", "last_checked", "tags"],
        )
    )
