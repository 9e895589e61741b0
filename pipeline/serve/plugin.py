"""The Datasette plugin of ``trialwatch serve``: the trial page, the Atom feed, trial links.

Registered by :func:`pipeline.serve.build_datasette` (not through an entry point, so
it touches no other Datasette).  Every read goes through Datasette's read-only
connections, with its time limit.  What a page shows is built by :mod:`.pages`
(pure); the templates escape every value.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from datasette import hookimpl
from datasette.utils.asgi import Response
from markupsafe import Markup

from pipeline.report.atom import render_atom
from pipeline.report.model import build_report, field_label, registry_url
from pipeline.serve import pages
from pipeline.sources import SOURCES

#: The name the database has in every URL (/trialwatch/change_log), whatever its file is called
#: (the templates spell it too).
DATABASE = "trialwatch"
#: Most changes the trial page lists (a trial with more shows the newest and says so).
TIMELINE_LIMIT = 500
#: Longest old / new value a change log cell shows (the trial page shows it whole).
CELL_CHARS = 160
#: Changes in one Atom feed.
FEED_LIMIT = 200
#: Tables whose trial_id cells link to the trial page.
TRIAL_TABLES = frozenset({"current_trials", "change_log", "trials", "changes", "snapshots", "query_members",
                          "watch_tags", "backfills", "failure_events"})


def trial_path(datasette, trial_id: str) -> str:
    return datasette.urls.path(f"/trial/{quote(trial_id, safe='')}")


@hookimpl
def register_routes():
    return [
        (r"^/$", home),
        (r"^/trial/(?P<trial_id>[^/]+)$", trial_page),
        (r"^/changes\.atom$", changes_feed),
    ]


@hookimpl
def extra_css_urls(datasette):
    return [datasette.urls.path("/trialwatch-static/trialwatch.css")]


@hookimpl
def render_cell(value, column, table, database, datasette):
    if database != DATABASE or value is None:
        return None
    if column == "trial_id" and table in TRIAL_TABLES and isinstance(value, str):
        return Markup('<a href="{}">{}</a>').format(trial_path(datasette, value), value)
    if table == "current_trials" and column == "status":
        return Markup('<span class="tw-status tw-status-{}">{}</span>').format(_slug(value), value)
    if table == "change_log" and column == "significance":
        return Markup('<span class="tw-sig tw-sig-{}">{}</span>').format(_slug(value), value)
    if table == "change_log" and column == "field":
        return Markup('<span title="{}">{}</span>').format(value, field_label(str(value)))
    if table == "change_log" and column in ("old_value", "new_value"):
        text = str(value)
        if len(text) > CELL_CHARS:
            text = text[:CELL_CHARS] + "…"
        return Markup('<span class="tw-{}">{}</span>').format(column[:3], text)
    if table in ("change_log", "current_trials") and column in ("detected_at", "last_changed", "last_checked"):
        return Markup('<time datetime="{}" class="tw-time">{}</time>').format(value, str(value)[:16].replace("T", " "))
    if table == "current_trials" and column == "tags" and isinstance(value, str):
        try:
            return ", ".join(str(t) for t in json.loads(value))
        except (ValueError, TypeError):
            return None
    return None


def _slug(value: Any) -> str:
    """``Active, not recruiting`` -> ``active-not-recruiting`` (a CSS class)."""
    return re.sub(r"[^a-z0-9]+", "-", str(value).lower()).strip("-")


async def home(datasette):
    return Response.redirect(datasette.urls.table(DATABASE, "current_trials"))


async def _rows(datasette, sql: str, params: dict | tuple = ()) -> list[dict[str, Any]]:
    result = await datasette.get_database(DATABASE).execute(sql, params)
    return [dict(r) for r in result.rows]


async def _table_exists(datasette, name: str) -> bool:
    return await datasette.get_database(DATABASE).table_exists(name)


async def trial_page(request, datasette):
    trial_id = request.url_vars["trial_id"]
    copies = await _rows(datasette, "SELECT * FROM current_trials WHERE trial_id = :t ORDER BY source", {"t": trial_id})
    if not copies:
        return Response.html(await datasette.render_template(
            "trialwatch_missing.html", {"trial_id": trial_id}, request=request), status=404)
    records = []
    for copy in copies:
        rec = await _rows(datasette, "SELECT record FROM snapshots WHERE id = :s", {"s": copy["snapshot_id"]})
        records.append(json.loads(rec[0]["record"]) if rec else {})
    changes = await _rows(
        datasette,
        "SELECT id, trial_id, source, snapshot_id, field, old, new, added, removed, significance, kind,"
        " detected_at, backfilled FROM changes WHERE trial_id = :t AND kind != 'detail'"
        " ORDER BY detected_at DESC, id DESC"
        f" LIMIT {TIMELINE_LIMIT + 1}",
        {"t": trial_id},
    )
    versions = await _rows(
        datasette,
        "SELECT id, source, fetched_at, registry_date, registry_version, backfilled FROM snapshots"
        " WHERE trial_id = :t ORDER BY id DESC",
        {"t": trial_id},
    )
    fields, empty_fields = pages.side_by_side(records)
    diff = await _version_diff(datasette, request, trial_id, versions)
    flags = await _open_flags(datasette, trial_id)
    context = {
        "trial_id": trial_id,
        "title": next((c["title"] for c in copies if c["title"]), None),
        "copies": [{**c, "url": registry_url(trial_id, c["source"]), "status_slug": _slug(c["status"] or ""),
                    "registry": SOURCES[c["source"]].label if c["source"] in SOURCES else c["source"]}
                   for c in copies],
        "fields": fields,
        "empty_fields": empty_fields,
        "timeline": pages.timeline(changes[:TIMELINE_LIMIT]),
        "timeline_cut": len(changes) > TIMELINE_LIMIT,
        "versions": versions,
        "diff": diff,
        "flags": flags,
    }
    return Response.html(await datasette.render_template("trialwatch_trial.html", context, request=request))


async def _version_diff(datasette, request, trial_id: str, versions: list[dict]) -> dict[str, Any] | None:
    """The diff the form asked for (?a=&b=), or by default the newest version against the one before it."""
    ids = {v["id"] for v in versions}
    a, b = request.args.get("a"), request.args.get("b")
    if a is None and b is None:  # the newest version that has an older one in its registry, against it
        pair = next(((older, newer) for i, newer in enumerate(versions) for older in versions[i + 1:]
                     if older["source"] == newer["source"]), None)
        if pair is None:
            return None
        a, b = pair[0]["id"], pair[1]["id"]
    try:
        a, b = int(a), int(b)
    except (TypeError, ValueError):
        return {"error": "choose two versions"}
    if a not in ids or b not in ids:
        return {"error": "no such version of this trial"}
    rows = await _rows(datasette, "SELECT id, record FROM snapshots WHERE id IN (:a, :b)", {"a": a, "b": b})
    by_id = {r["id"]: json.loads(r["record"]) for r in rows}
    return {"a": a, "b": b, "lines": pages.version_diff(by_id[a], by_id[b])}


async def _open_flags(datasette, trial_id: str) -> list[dict[str, Any]] | None:
    """Open integrity flags and discrepancies of the trial; None while no ``trial_flags`` table exists.

    TO WIRE (cross-registry issue): ``trial_flags.trial_key`` is matched to the trial ID
    here; once ``trial_links`` lands, match the trial's key from it instead.
    """
    if not await _table_exists(datasette, "trial_flags"):
        return None
    return await _rows(
        datasette,
        "SELECT kind, subject, detail, raised_at FROM trial_flags WHERE trial_key = :t AND cleared_at IS NULL"
        " ORDER BY raised_at DESC",
        {"t": trial_id},
    )


async def changes_feed(request, datasette):
    """An Atom feed of the change log: all, per tag (?tag=) or per query watch (?query=)."""
    where, params, what = ["1 = 1"], {}, []
    tag, query = request.args.get("tag"), request.args.get("query")
    if tag:
        where.append("c.trial_id IN (SELECT trial_id FROM watch_tags WHERE tag = :tag)")
        params["tag"] = tag
        what.append(f"tag {tag}")
    if query:
        where.append("c.trial_id IN (SELECT trial_id FROM query_members WHERE query = :query)")
        params["query"] = query
        what.append(f"query watch {query}")
    for column in ("significance", "field", "source"):
        value = request.args.get(column)
        if value:
            where.append(f"c.{column} = :{column}")
            params[column] = value
            what.append(f"{column} {value}")
    rows = await _rows(
        datasette,
        "SELECT c.id, c.trial_id, c.source, c.snapshot_id, c.run_id, c.field, c.old, c.new, c.added, c.removed,"
        " c.significance, c.kind, c.detected_at, c.backfilled, t.title FROM changes c"
        " LEFT JOIN trials t ON t.trial_id = c.trial_id AND t.source = c.source"
        f" WHERE {' AND '.join(where)} ORDER BY c.id DESC LIMIT {FEED_LIMIT}",
        params,
    )
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = build_report(
        [pages.decode_change(r) for r in rows],
        titles={(r["trial_id"], r["source"]): r["title"] for r in rows},
        generated_at=now,
        title="trialwatch changes" + (f" ({', '.join(what)})" if what else ""),
    )
    feed_id = "trialwatch:changes" + "".join(f":{k}={v}" for k, v in sorted(params.items()))
    return Response(render_atom(report, feed_id=feed_id), content_type="application/atom+xml; charset=utf-8")
