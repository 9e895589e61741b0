"""What ``trialwatch status`` says: per source the last and next run, failing trials, channels.

:func:`load_status` reads the store and the config into one JSON-able dict (the
``--json`` output); :func:`render_status` lays it out for a terminal (pure).  The
next run comes from the cron expression, so it is known even when no daemon runs.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from pipeline.config import Config
from pipeline.daemon import next_runs
from pipeline.lock import daemon_running
from pipeline.render_table import short, table
from pipeline.report.model import printable
from pipeline.store import Store, open_store


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists (a recorded daemon or run may be long gone)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_status(config: Config, now: datetime) -> dict[str, Any]:
    """The status document; reads the database when it exists, never writes it."""
    upcoming = next_runs(config, now)
    doc: dict[str, Any] = {"database": str(config.database_path), "checked_at": _iso(now), "daemon": {"running": False}}
    last: dict[str, Any] = {}
    backlog: dict[str, int] = {}
    failing: list[dict[str, Any]] = []
    channels: list[dict[str, Any]] = []
    daemon = daemon_running(config.database_path)  # the lock says, not a PID that may be reused
    if daemon:
        pid = int(daemon["pid"]) if daemon["pid"].isdigit() else daemon["pid"]
        doc["daemon"] = {"running": True, "pid": pid, "started_at": daemon["started_at"]}
    if config.database_path.exists():
        with open_store(config) as store:
            for source in config.sources:
                last[source] = store.last_run(source)
            failing = store.failing_trials(1)
            channels = store.channels()
            backlog = {c["name"]: _backlog(config, store, c["name"]) for c in channels}
    doc["sources"] = {}
    for name, src in config.sources.items():
        run = last.get(name)
        doc["sources"][name] = {
            "enabled": src.enabled,
            "schedule": config.schedule.get(name),
            "jitter_s": config.schedule_jitter,
            "next_run": _iso(upcoming.get(name)) if src.enabled else None,
            "last_run": run_json(run) if run else None,
        }
    doc["failing_trials"] = [
        {k: t[k] for k in ("trial_id", "source", "fail_streak", "last_error", "last_checked")}
        | {"alerted": bool(t["alerted_failure"])}
        for t in failing
    ]
    doc["failure_alert_after"] = config.failure_alert_after
    configured = {r.name for r in config.alerts}
    doc["channels"] = [
        {k: c[k] for k in ("name", "channel", "last_attempt", "last_success", "last_error", "failing_since")}
        | {"backlog": backlog.get(c["name"], 0)}
        for c in channels
        if c["name"] in configured
    ]
    return doc


def _backlog(config: Config, store: Store, name: str) -> int:
    """How many changes and failure alerts wait for this channel (what its rule wants, not yet sent)."""
    from pipeline.alert_rules import matches, wants_failure

    rule = next((r for r in config.alerts if r.name == name), None)
    if rule is None:
        return 0
    changes, failures, _, _ = store.undelivered(name)
    return sum(1 for c in changes if matches(rule, c, config.tags)) + sum(
        1 for f in failures if wants_failure(rule, f, config.tags)
    )


def run_json(run: dict[str, Any]) -> dict[str, Any]:
    """One runs row as status shows it: duration, counts, and "interrupted" for a vanished process."""
    duration = None
    if run.get("finished_at"):
        start = datetime.fromisoformat(run["started_at"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(run["finished_at"].replace("Z", "+00:00"))
        duration = (end - start).total_seconds()
    counts = {k: run[k] for k in ("fetched", "new", "unchanged", "changed", "missing", "failed", "requests")}
    if any(v is None for v in counts.values()):
        counts = None  # a run of several sources recorded before per-source counts: the split is unknown
    running = run["status"] == "running" and pid_alive(run.get("pid"))
    status = run["status"] if run["status"] != "running" or running else "interrupted (process gone)"
    return {
        "run_id": run["id"],
        "started_at": run["started_at"],
        "finished_at": run["finished_at"],
        "duration_s": duration,
        "status": status,
        "trigger": run["trigger"],
        "sources": run["sources"],
        "counts": counts,
        "note": run.get("note"),
    }


def _grouped_failing(failing: list[dict[str, Any]]) -> list[tuple[tuple, str]]:
    """Failing trials with the same source, streak, alert and error as one row: "A, B, C and 9 more (x12)"."""
    groups: dict[tuple, list[str]] = {}
    for t in failing:
        groups.setdefault((t["source"], t["fail_streak"], t["alerted"], t["last_error"]), []).append(t["trial_id"])
    out = []
    for key, ids in groups.items():
        label = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        out.append((key, label + (f" (\u00d7{len(ids)})" if len(ids) > 1 else "")))
    return out


def render_status(doc: dict[str, Any]) -> str:
    """The status document as terminal text (pure)."""
    d = doc["daemon"]
    lines = [f"database: {doc['database']}"]
    lines.append(f"daemon: running (pid {d['pid']}, since {d['started_at']})" if d["running"] else "daemon: not running")
    lines.append("")
    rows = []
    for name, s in doc["sources"].items():
        run = s["last_run"]
        if not s["enabled"]:
            rows.append((name, "disabled", "-", "-", "-", "-"))
            continue
        if run:
            c = run["counts"]
            took = f"{run['duration_s']:.0f} s" if run["duration_s"] is not None else "-"
            counts = "-" if c is None else (
                f"fetched {c['fetched']}, new {c['new']}, changed {c['changed']}, "
                f"missing {c['missing']}, failed {c['failed']}"
            )
            rows.append((name, f"{run['started_at']} ({run['status']}, {run['trigger']})", took, counts,
                         s["next_run"] or "-", s["schedule"]))
        else:
            rows.append((name, "never", "-", "-", s["next_run"] or "-", s["schedule"]))
    lines.append(table(rows, ["source", "last run", "took", "counts", "next run", "schedule"]))
    for name, s in doc["sources"].items():
        if s["enabled"] and s["last_run"] and s["last_run"].get("note"):
            lines.append(f"last run of {name}: {printable(s['last_run']['note'])}")
    lines.append("")
    if doc["failing_trials"]:
        lines.append(f"trials failing (a failure alert after {doc['failure_alert_after']} runs in a row):")
        lines.append(
            table(
                ((trials, source, streak, "yes" if alerted else "no", short(printable(error or ""), 70))
                 for (source, streak, alerted, error), trials in _grouped_failing(doc["failing_trials"])),
                ["trial", "source", "runs failed", "alerted", "last error"],
            )
        )
    else:
        lines.append("no trial is failing")
    if doc["channels"]:
        lines.append("")
        lines.append(
            table(
                ((c["name"], c["channel"], c["last_success"] or "never", c["backlog"],
                  short(c["last_error"], 60) if c["last_error"] else "ok") for c in doc["channels"]),
                ["alert", "channel", "last delivery", "waiting", "state"],
            )
        )
    return "\n".join(lines)
