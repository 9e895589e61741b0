"""Running unattended: daemon, status, report, deliver."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from pipeline.cli.common import SOURCE_CHOICE, check_sources_enabled
from pipeline.cli.options import SINCE_HELP, since_option
from pipeline.cli.core import StopFlag
from pipeline.render_table import escape_controls

def register(cli: click.Group) -> None:
    cli.add_command(check_cmd)
    cli.add_command(daemon_cmd)
    cli.add_command(status_cmd)
    cli.add_command(report_cmd)
    cli.add_command(deliver_cmd)


@click.command("check")
@click.option("--channels", is_flag=True,
              help="Also send each alert channel a test message (marked as a test; not recorded as a delivery).")
@click.pass_obj
def check_cmd(app, channels):
    """Check the setup: the config, each enabled source, and (--channels) each alert channel.

    Validates the config file, reaches each enabled registry with one cheap request
    (ClinicalTrials.gov /version, one WHO portal page) and, with --channels, sends
    each [[alerts]] channel a message marked as a test (no change is delivered, no
    cursor moves).  One line per item, "ok" or "FAIL" and what was seen.  Exits 0
    when every item is ok, 1 otherwise.
    """
    import time

    from pipeline.errors import ConfigError, FetchError, ParseError
    from pipeline.http_client import RegistryClient, build_http_client
    from pipeline.refresh import watched_ids
    from pipeline.sources import SOURCES

    try:
        config = app.config
    except ConfigError as exc:
        click.echo(f"config: FAIL {exc}")
        sys.exit(1)
    enabled = config.enabled_sources()
    click.echo(
        f"config: ok ({app.config_path}: {len(config.trials)} trials watched; sources enabled: "
        f"{', '.join(enabled) or 'none'}; {len(config.alerts)} alert rule{'s' if len(config.alerts) != 1 else ''})"
    )
    ok = bool(enabled)
    if not enabled:
        click.echo("sources: FAIL no source is enabled (sources.<name>.enabled)")
    for name in config.sources:
        if name not in enabled:
            click.echo(f"{name}: disabled (sources.{name}.enabled = false)")
    with build_http_client() as http:
        for name in enabled:
            cfg = config.sources[name]
            client = RegistryClient(cfg, http, deadline=time.monotonic() + min(cfg.run_budget, 120.0))
            try:
                detail = SOURCES[name].check(client, watched_ids(config, name))
            except (FetchError, ParseError) as exc:
                ok = False
                cause = getattr(exc, "cause", None) or getattr(exc, "connect_cause", None)
                if cause:
                    click.echo(f"{name}: FAIL cannot connect to {cfg.base_url} ({cause}); check sources.{name}.base_url")
                else:
                    click.echo(escape_controls(f"{name}: FAIL {cfg.base_url}: {type(exc).__name__}: {exc}"))
                continue
            click.echo(escape_controls(f"{name}: ok {cfg.base_url}: {detail}"))
    if channels:
        ok = _test_channels(config, None) and ok
    sys.exit(0 if ok else 1)


def _test_channels(config, only: str | None) -> bool:
    """Send each channel (or ``only``) a test message; a line each; True when all went out."""
    from pipeline.deliver import send_test_messages

    if not config.alerts:
        click.echo("alerts: none configured ([[alerts]] in the config)")
        return True
    outcomes = send_test_messages(config, only=only)
    for o in outcomes:
        click.echo(escape_controls(f"alert {o.name!r} ({o.channel}): {'ok' if o.ok else 'FAIL'} {o.detail}"))
    return all(o.ok for o in outcomes)


@click.command("daemon")
@click.option("--once", is_flag=True, help="Run each source's job once (refresh, then deliver) and exit.")
@click.option("--source", "sources", type=SOURCE_CHOICE, multiple=True, help="Only this source (repeatable).")
@click.option(
    "--wait/--no-wait",
    default=True,
    help="When another refresh holds the lock at run time: wait for it (default), or skip that run.",
)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning"]), default="info", show_default=True,
              help="How much to log to stderr (info: one line per run and per delivery).")
@click.pass_obj
def daemon_cmd(app, once, sources, wait, log_level):
    """Refresh on the [schedule] in the config and deliver new alerts.

    One job per enabled source, on its cron expression (5 fields, or 6 with seconds
    first), delayed by up to schedule.jitter seconds.  After each run the new
    changes the [[alerts]] rules choose are delivered to each channel once; a channel
    that is down keeps its backlog for the next run.  Logs one line per run to
    stderr.  SIGTERM or Ctrl-C lets the trial in hand finish, then exits 0.  One
    daemon per database: a second one exits 1 naming the first one's PID.  With
    --once, exits 1 when a trial or a channel failed, as refresh and deliver do.
    """
    import logging

    from pipeline.clock import utcnow
    from pipeline.daemon import Daemon, once_exit_code, setup_logging
    from pipeline.deliver import Redactor, secret_values
    from pipeline.lock import DaemonLock
    from pipeline.store import open_store

    config = _only_sources(app.config, sources)
    redactor = Redactor(secret_values(config))

    def reload():
        from pipeline.config import load_config

        fresh = _only_sources(load_config(app.config_path), sources)
        redactor.secrets = sorted(set(redactor.secrets) | set(secret_values(fresh)), key=len, reverse=True)
        return fresh

    setup_logging(getattr(logging, log_level.upper()), redactor)
    log = logging.getLogger("trialwatch.daemon")
    for warning in _channel_warnings(config):
        log.warning("%s", warning)
    stop = StopFlag()
    stop.install()
    daemon = Daemon(config, should_stop=stop, wait_for_lock=wait, reload=reload, config_path=app.config_path)
    if once:
        sys.exit(once_exit_code(daemon.run_once()))
    with DaemonLock(config.database_path) as single:  # DaemonRunning (exit 1) when another daemon has it
        with open_store(config) as store:  # for `status` and people: the lock decides, not this
            store.set_meta("daemon", json.dumps({"pid": os.getpid(), "started_at": single.started_at or utcnow()}))
        try:
            daemon.run_forever(stop.event)
        finally:
            if daemon.fatal is None:  # a deleted database is not re-created to say goodbye
                with open_store(config) as store:
                    store.set_meta("daemon", None)
    if daemon.fatal is not None:
        click.echo(f"Error: {daemon.fatal}", err=True)
        sys.exit(1)
    sys.exit(0)


def _only_sources(config, sources):
    """The config with every source but ``sources`` disabled (all as configured when empty)."""
    from dataclasses import replace

    check_sources_enabled(config, sources)
    if not sources:
        return config
    return replace(
        config, sources={n: (s if n in sources else replace(s, enabled=False)) for n, s in config.sources.items()}
    )


def _channel_warnings(config) -> list[str]:
    """Environment variables the alert rules name but that are not set (said at start, not at 3 a.m.)."""
    out = []
    for rule in config.alerts:
        for key in ("password_env", "token_env", "url_env"):
            name = rule.options.get(key)
            if name and not os.environ.get(name):
                out.append(f"alert {rule.name!r}: environment variable {name} ({key}) is not set; its deliveries will fail")
    return out


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_obj
def status_cmd(app, as_json):
    """Per source the last run and the next scheduled one; trials failing; alert channels."""
    from pipeline.status import load_status, render_status

    doc = load_status(app.config, datetime.now(timezone.utc))
    click.echo(json.dumps(doc, ensure_ascii=False, indent=2) if as_json else render_status(doc))


@click.command("report")
@since_option(default="last", help="'last' (everything not yet reported; moves the report cursor), or " + SINCE_HELP + ".")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "html", "json", "csv", "atom"]),
              default="text", show_default=True, help="Output format.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout.")
@click.option("--include-backfilled", is_flag=True, help="Also show changes rebuilt from registry history.")
@click.option("--peek", is_flag=True, help="With --since last: show the report but leave the cursor where it is.")
@click.pass_obj
def report_cmd(app, since, fmt, out, include_backfilled, peek):
    """Report the recorded changes, grouped by trial, most significant first.

    Each change reads old -> new (long text as a word diff) with a link to the
    registry page; trials that failed run after run have their own section.
    --since last reports everything not yet reported and then moves a cursor in
    the database, so running it again reports nothing new.
    """
    from pipeline.deliver import note_failures
    from pipeline.report import render
    from pipeline.report.load import load_report
    from pipeline.clock import utcnow
    from pipeline.store import open_store

    config = app.config
    with open_store(config) as store:
        note_failures(config, store)
        loaded = load_report(
            store,
            since,
            generated_at=utcnow(),
            include_backfilled=include_backfilled,
            failure_alert_after=config.failure_alert_after,
        )
        feed_id = "urn:trialwatch:" + _feed_key(config.database_path)
        text = render(loaded.report, fmt, feed_id=feed_id)
        if out:
            _write_atomically(out, text)
        else:
            click.echo(text, nl=False)
        if since.last and not peek:
            store.set_report_cursor(loaded.upto_change, loaded.upto_failure)
    if out:
        click.echo(f"{loaded.report.summary()}; written to {out}", err=True)


def _feed_key(path: Path) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, "file://" + str(Path(path).resolve())))


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None


@click.command("deliver")
@click.option("--alert", "only", help="Only the alert rule with this name.")
@click.option("--wait/--no-wait", default=True, help="If a refresh is running: wait for it (default), or exit 3.")
@click.option("--test", "test", is_flag=True,
              help="Only send each channel a message marked as a test (nothing delivered, no cursor moved).")
@click.pass_obj
def deliver_cmd(app, only, wait, test):
    """Deliver the alerts not yet sent to each channel (what the daemon does after a run).

    For cron users: run it after `trialwatch refresh`.  Exits 1 when a channel
    failed (its backlog is kept for the next try).
    """
    import logging

    from pipeline.daemon import setup_logging
    from pipeline.deliver import Redactor, deliver_pending, note_failures, secret_values
    from pipeline.lock import RefreshLock
    from pipeline.store import open_store

    config = app.config
    if only and only not in {r.name for r in config.alerts}:
        known = ", ".join(f"{r.name!r} ({r.channel})" for r in config.alerts)
        raise click.BadParameter(
            f"no alert rule named {only!r}; "
            + (f"the config has: {known}" if known else "the config has no [[alerts]]"),
            param_hint="'--alert'",
        )
    if test:
        sys.exit(0 if _test_channels(config, only) else 1)
    if not config.alerts:
        click.echo("no [[alerts]] in the config: nothing to deliver")
        return
    setup_logging(logging.WARNING, Redactor(secret_values(config)))
    stop = StopFlag()
    stop.install()  # SIGTERM ends a send in progress at once; what was not sent stays in the backlog
    with RefreshLock(config.database_path, wait=wait):
        with open_store(config) as store:
            note_failures(config, store)
            outcomes = deliver_pending(config, store, only=only, should_stop=stop)
    redact = Redactor(secret_values(config))
    for o in outcomes:
        if o.ok and not o.sent:
            click.echo(f"{o.channel} {o.name!r}: nothing new")
        elif o.ok:
            click.echo(redact(o.describe()))
    sys.exit(1 if any(not o.ok for o in outcomes) else 0)
