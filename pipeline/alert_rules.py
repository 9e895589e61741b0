"""Which stored changes an alert rule wants, and the options each channel needs.

Pure functions: the daemon asks :func:`matches` for every new change and hands the
chosen ones to the channel's sender.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from pipeline.validate import check_url
from pipeline.errors import ConfigError

REQUIRED_OPTIONS = {
    "webhook": ("url",),
    "email": ("smtp_host", "from", "to"),
    "folder": ("path",),
    "apprise": ("url",),
}


def validate_alert_options(channel: str, options: dict[str, Any], key: str) -> None:
    """ConfigError naming the key when a channel lacks what it needs."""
    for name in REQUIRED_OPTIONS[channel]:
        if name == "url" and options.get("url_env"):
            continue
        if not options.get(name):
            raise ConfigError(f"{key}.{name}: required for channel {channel!r}", f"{key}.{name}")
    if channel == "webhook" and options.get("url"):
        check_url(options["url"], f"{key}.url")
    if channel == "email":
        port = options.get("smtp_port", 25)
        if not 0 < port < 65536:
            raise ConfigError(f"{key}.smtp_port: not a port number: {port}", f"{key}.smtp_port")
        if options.get("starttls") and options.get("ssl"):
            raise ConfigError(f"{key}: choose starttls or ssl, not both", f"{key}.starttls")
    fmt = options.get("format")
    if fmt is not None and fmt not in ("text", "markdown", "html", "json", "csv", "atom"):
        raise ConfigError(f"{key}.format: unknown report format {fmt!r}", f"{key}.format")


def _trial_selected(rule: Any, trial_id: str, source: str, tags: Mapping[str, Iterable[str]]) -> bool:
    """The rule's trial, tag and source filters (all optional; trials and tags add up)."""
    if rule.sources and source not in rule.sources:
        return False
    if not rule.trials and not rule.tags:
        return True
    if trial_id in rule.trials:
        return True
    return any(trial_id in tags.get(tag, ()) for tag in rule.tags)


def matches(rule: Any, change: Mapping[str, Any], tags: Mapping[str, Iterable[str]]) -> bool:
    """Whether ``rule`` wants ``change`` delivered.

    A change passes when it is neither backfilled history nor a "detail" row (the
    registry's wording moving with its normalized field), its significance is one the
    rule lists, its field is one the rule lists (when it lists any), its kind is one the
    rule lists (when it lists any ``kinds``: field, missing, reappeared, query, discrepancy,
    flag; a discrepancy's field is the compared field, a flag's its kind), and its trial is
    one of the rule's ``trials`` or belongs to one of its ``tags`` (when it names any),
    from one of its ``sources`` (when it names any).  ``tags`` maps a tag name to the
    trial IDs of ``[watch.tags]``.
    """
    if change.get("backfilled") or change.get("kind") == "detail":
        return False
    if change["significance"] not in rule.significance:
        return False
    if rule.fields and change["field"] not in rule.fields:
        return False
    if getattr(rule, "kinds", ()) and change.get("kind", "field") not in rule.kinds:
        return False
    return _trial_selected(rule, change["trial_id"], change["source"], tags)


def wants_failure(rule: Any, event: Mapping[str, Any], tags: Mapping[str, Iterable[str]]) -> bool:
    """Whether ``rule`` wants a failure alert (a trial failing run after run, or its recovery).

    Only the trial, tag and source filters apply; ``failures = false`` turns them off.
    """
    return bool(rule.failures) and _trial_selected(rule, event["trial_id"], event["source"], tags)
