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
                          "watch_tags", "backfills", "failure_events", "trial_links"})


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
    if column == "trial_key" and table in ("trial_links", "trial_flags") and isinstance(value, str):
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
    if table == "current_trials" and column == "open_flags" and isinstance(value, str):
        try:
            kinds = [str(k) for k in json.loads(value)]
        except (ValueError, TypeError):
            return None
        if not kinds:
            return Markup('<span class="tw-none"></span>')
        return Markup(" ").join(Markup('<span class="tw-flag">{}</span>').format(k) for k in kinds)
    if table == "current_trials" and column == "tags" and isinstance(value, str):
        try:
            tags = ", ".join(str(t) for t in json.loads(value))
        except (ValueError, TypeError):
            return None
        return tags or Markup('<span class="tw-none"></span>')  # "" would show the raw "[]"
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


async def _members(datasette, trial_id: str) -> tuple[str | None, list[tuple[str, str]]]:
    """The trial's key and its records ((trial_id, source), the asked ID first) from ``trial_links``:
    every record linked to it (its WHO copy, a EudraCT record named in its secondary IDs, ...).
    A record not linked yet (no run since it was stored) is the trial of its own ID."""
    members: list[tuple[str, str]] = []
    key = None
    if await _table_exists(datasette, "trial_links"):
        found = await _rows(datasette, "SELECT trial_key FROM trial_links WHERE trial_id = :t OR trial_key = :t"
                                       " ORDER BY trial_id != :t LIMIT 1", {"t": trial_id})
        if found:
            key = found[0]["trial_key"]
            members = [(r["trial_id"], r["source"]) for r in await _rows(
                datasette, "SELECT trial_id, source FROM trial_links WHERE trial_key = :k", {"k": key})]
    if not any(t == trial_id for t, _ in members):  # not linked (yet): its own records
        members += [(r["trial_id"], r["source"]) for r in await _rows(
            datasette, "SELECT trial_id, source FROM trials WHERE trial_id = :t", {"t": trial_id})]
    members = sorted(set(members), key=lambda m: (m[0] != trial_id, _source_rank(m[1]), m[1], m[0]))
    return key, members


def _source_rank(source: str) -> int:
    names = list(SOURCES)
    return names.index(source) if source in names else len(names)


def _member_sql(members: list[tuple[str, str]], alias: str = "") -> tuple[str, dict[str, str]]:
    """SQL matching any of ``members`` ((trial_id, source) pairs), and its parameters."""
    parts, params = [], {}
    for i, (t, s) in enumerate(members):
        parts.append(f"({alias}trial_id = :t{i} AND {alias}source = :s{i})")
        params[f"t{i}"], params[f"s{i}"] = t, s
    return "(" + " OR ".join(parts or ["0"]) + ")", params


async def trial_page(request, datasette):
    trial_id = request.url_vars["trial_id"]
    key, members = await _members(datasette, trial_id)
    where, params = _member_sql(members)
    rows = {(c["trial_id"], c["source"]): c
            for c in await _rows(datasette, f"SELECT * FROM current_trials WHERE {where}", params)}
    copies = [rows[m] for m in members if m in rows]
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
        f" detected_at, backfilled FROM changes WHERE {where} AND kind != 'detail'"
        " ORDER BY detected_at DESC, id DESC"
        f" LIMIT {TIMELINE_LIMIT + 1}",
        params,
    )
    versions = await _rows(
        datasette,
        "SELECT id, trial_id, source, fetched_at, registry_date, registry_version, backfilled FROM snapshots"
        f" WHERE {where} ORDER BY id DESC",
        params,
    )
    fields, empty_fields = pages.side_by_side(records)
    diff = await _version_diff(datasette, request, versions)
    flags = await _open_flags(datasette, key)
    several_ids = len({c["trial_id"] for c in copies}) > 1

    def registry(c: dict[str, Any]) -> str:
        label = SOURCES[c["source"]].label if c["source"] in SOURCES else c["source"]
        return f"{label} {c['trial_id']}" if several_ids else label

    context = {
        "trial_id": trial_id,
        "trial_key": key,
        "title": next((c["title"] for c in copies if c["title"]), None),
        "copies": [{**c, "url": registry_url(c["trial_id"], c["source"]), "status_slug": _slug(c["status"] or ""),
                    "registry": registry(c), "page": trial_path(datasette, c["trial_id"])}
                   for c in copies],
        "several_ids": several_ids,
        "fields": fields,
        "empty_fields": empty_fields,
        "timeline": pages.timeline(changes[:TIMELINE_LIMIT]),
        "timeline_cut": len(changes) > TIMELINE_LIMIT,
        "versions": versions,
        "diff": diff,
        "flags": flags,
    }
    return Response.html(await datasette.render_template("trialwatch_trial.html", context, request=request))


async def _version_diff(datasette, request, versions: list[dict]) -> dict[str, Any] | None:
    """The diff the form asked for (?a=&b=), or by default the newest version against the one before it."""
    ids = {v["id"] for v in versions}
    a, b = request.args.get("a"), request.args.get("b")
    if a is None and b is None:  # the newest version that has an older one in its registry, against it
        pair = next(((older, newer) for i, newer in enumerate(versions) for older in versions[i + 1:]
                     if (older["trial_id"], older["source"]) == (newer["trial_id"], newer["source"])), None)
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


async def _open_flags(datasette, trial_key: str | None) -> list[dict[str, Any]] | None:
    """The open discrepancies and integrity flags of the trial ``trial_key`` (``trial_links``),
    newest first, each with its readable kind and subject and its ``summary``; None while
    no ``trial_flags`` table exists (an empty list: none open, or the trial is not linked yet)."""
    if not await _table_exists(datasette, "trial_flags"):
        return None
    if trial_key is None:
        return []
    rows = await _rows(
        datasette,
        "SELECT kind, subject, copies, detail, raised_at FROM trial_flags WHERE trial_key = :k AND cleared_at IS NULL"
        " ORDER BY raised_at DESC, id DESC",
        {"k": trial_key},
    )
    return [pages.flag_line(r) for r in rows]


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
    keys: dict[tuple[str, str], str] = {}
    if rows and await _table_exists(datasette, "trial_links"):
        where_m, params_m = _member_sql(sorted({(r["trial_id"], r["source"]) for r in rows}))
        keys = {(r["trial_id"], r["source"]): r["trial_key"] for r in await _rows(
            datasette, f"SELECT trial_id, source, trial_key FROM trial_links WHERE {where_m}", params_m)}
    report = build_report(
        [pages.decode_change(r) for r in rows],
        titles={(r["trial_id"], r["source"]): r["title"] for r in rows},
        trial_keys=keys,
        generated_at=now,
        title="trialwatch changes" + (f" ({', '.join(what)})" if what else ""),
    )
    feed_id = "trialwatch:changes" + "".join(f":{k}={v}" for k, v in sorted(params.items()))
    return Response(render_atom(report, feed_id=feed_id), content_type="application/atom+xml; charset=utf-8")
