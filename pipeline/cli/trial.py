"""One trial across registries: ``trial`` (its copies side by side) and ``flags``."""

from __future__ import annotations

import click

from pipeline.codec import change_date, change_json
from pipeline.cli.core import _json_out, trial_id_arg
from pipeline.cli.options import full_option, output_style
from pipeline.crosscheck import FIELD_WORDS
from pipeline.integrity import FLAG_KINDS
from pipeline.record import readable_value
from pipeline.render_table import describe_change, escape_controls

#: The rows of the side-by-side view: (label, record field).
ROWS = (
    ("status", "recruitment_status"),
    ("enrolment", "target_size"),
    ("start", "date_first_enrolment"),
    ("primary completion", "primary_completion_date"),
    ("completion", "completion_date"),
    ("registered", "date_registration"),
    ("sponsor", "primary_sponsor"),
    ("results posted", "results_posted"),
)


def register(cli: click.Group) -> None:
    cli.add_command(trial_cmd)
    cli.add_command(flags_cmd)


def _copy_rows(store, members):
    from pipeline.sources import SOURCES

    out = []
    for trial_id, source in members:
        state = store.load_state(trial_id, source)
        record = (state.record if state else None) or {}
        src = SOURCES.get(source)
        updated_field = getattr(src, "updated_field", "last_updated")
        out.append({
            "trial_id": trial_id,
            "source": source,
            "registry": getattr(src, "label", source),
            "state": state.state if state else None,
            "updated": record.get(updated_field) or record.get("last_updated"),
            "updated_word": getattr(src, "updated_word", "last updated"),
            "title": record.get("public_title") or record.get("scientific_title"),
            **{name: record.get(name) for _, name in ROWS},
            "primary_outcomes": record.get("primary_outcomes") or [],
        })
    return out


def _flag_json(row: dict) -> dict:
    return {k: row[k] for k in ("id", "trial_key", "kind", "subject", "copies", "detail", "raised_at", "cleared_at")}


@click.command("trial")
@click.argument("trial_id", callback=trial_id_arg)
@click.option("--json", "as_json", is_flag=True, help="Print the copies, flags and timeline as JSON.")
@full_option
@click.pass_obj
def trial_cmd(app, trial_id, as_json, full):
    """One trial across registries: its copies side by side, where they disagree,
    its open flags, and its changes across copies, newest first.

    TRIAL_ID may be any of the trial's IDs (the NCT ID, the WHO copy's, a EudraCT
    number's EU-CTR record...).  Copies are linked by ID and secondary IDs after each
    refresh, import and backfill.
    """
    with app.store() as store:
        key = store.trial_key_of(trial_id)
        if key is None:
            raise click.ClickException(f"nothing stored for {trial_id}; is it watched and refreshed?")
        members = store.trial_members(key)
        copies = _copy_rows(store, members)
        flags = store.trial_flags(trial_key=key)
        timeline = store.trial_changes(members)
    discrepancies = [f for f in flags if f["kind"] == "discrepancy"]
    integrity = [f for f in flags if f["kind"] == "flag"]
    if as_json:
        _json_out({
            "trial_key": key,
            "copies": copies,
            "discrepancies": [_flag_json(f) for f in discrepancies],
            "flags": [_flag_json(f) for f in integrity],
            "timeline": [change_json(c) for c in timeline],
        })
        return
    width, style = output_style(full)
    title = next((c["title"] for c in copies if c["title"]), "")
    click.echo(style.paint(escape_controls(f"{key}  {title}"), "head"))
    label_w = max(len(label) for label, _ in ROWS + (("registry", ""), ("updated", "")))
    col_w = 30 if width is None else max(14, (width - label_w - 2) // max(len(copies), 1) - 2)

    def line(label: str, values: list) -> None:
        cells = [escape_controls("-" if v is None or v == "" else str(v))[:col_w].ljust(col_w) for v in values]
        click.echo(f"  {label.ljust(label_w)}  " + "  ".join(cells).rstrip())

    line("registry", [f"{c['registry']} {c['trial_id']}" for c in copies])
    line("updated", [f"{c['updated'] or '-'}" + ("" if c["state"] == "present" else f" ({c['state']})") for c in copies])
    for label, name in ROWS:
        line(label, [readable_value(name, c[name]) for c in copies])
    line("primary outcomes", [len(c["primary_outcomes"]) for c in copies])
    for i in range(max((len(c["primary_outcomes"]) for c in copies), default=0)):
        line(f"  {i + 1}.", [c["primary_outcomes"][i] if i < len(c["primary_outcomes"]) else "" for c in copies])
    click.echo(style.paint("Where the copies disagree", "head"))
    if not discrepancies:
        click.echo("  nowhere: the copies agree wherever both say something" if len(copies) > 1
                   else "  one copy only: nothing to compare")
    for f in discrepancies:
        click.echo(escape_controls(f"  {FIELD_WORDS.get(f['subject'], f['subject'])}: {f['detail']['summary']}"
                                   f" (raised {f['raised_at'][:10]})"))
    click.echo(style.paint("Open flags", "head"))
    if not integrity:
        click.echo("  none")
    for f in integrity:
        click.echo(escape_controls(f"  {f['subject']} [{f['copies']}]: {f['detail']['summary']}"))
    click.echo(style.paint("Timeline, newest first", "head"))
    for c in timeline:
        head = f"  {change_date(c)[:10]}  {c['source']}:{c['trial_id']}  {escape_controls(c['field'])}: "
        room = None if width is None else max(width - len(head), 24)
        click.echo(head + describe_change(c, room).render(style))


@click.command("flags")
@click.option("--kind", type=click.Choice(("discrepancy",) + FLAG_KINDS),
              help="Only this kind: discrepancy, or a flag kind.")
@click.option("--trial", "trial_id", callback=trial_id_arg, help="Only this trial (any of its IDs).")
@click.option("--open/--all", "open_only", default=True, help="Open ones only (default), or also resolved ones.")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
@click.pass_obj
def flags_cmd(app, kind, trial_id, open_only, as_json):
    """Discrepancies between registry copies and integrity flags, newest first.

    Kinds: discrepancy (two copies of a trial disagree), outcome_switching,
    results_overdue, stale_status, retrospective_registration.  See the README,
    "Reading a trial across registries and over time", for each rule.
    """
    with app.store() as store:
        key = None
        if trial_id:
            key = store.trial_key_of(trial_id)
            if key is None:
                raise click.ClickException(f"nothing stored for {trial_id}; is it watched and refreshed?")
        rows = store.trial_flags(
            kind="discrepancy" if kind == "discrepancy" else ("flag" if kind else None),
            subject=None if kind in (None, "discrepancy") else kind,
            trial_key=key, open_only=open_only,
        )
    if as_json:
        _json_out([_flag_json(r) for r in rows])
        return
    if not rows:
        click.echo("no open discrepancies or flags" if open_only else "no discrepancies or flags")
        return
    for r in rows:
        what = r["subject"] if r["kind"] == "flag" else f"discrepancy: {FIELD_WORDS.get(r['subject'], r['subject'])}"
        state = f"resolved {r['cleared_at'][:10]}" if r["cleared_at"] else "open"
        click.echo(escape_controls(f"{r['trial_key']}  {what}  [{r['copies']}]  raised {r['raised_at'][:10]}, {state}"))
        click.echo(escape_controls(f"    {r['detail'].get('summary', '')}"))
