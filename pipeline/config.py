"""Reading and validating ``config.toml``.

Every key is declared once, in :data:`SCHEMA`, with its type and default.  A key
that is not declared, a value of the wrong type, a bad URL, a bad cron expression or
an invalid trial ID raises :class:`ConfigError` naming the key path (for example
``sources.ctgov.timeout``) before any command writes anything.  The loader returns
plain frozen dataclasses; nothing downstream reads TOML.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.alert_rules import validate_alert_options
from pipeline.cron import validate_cron
from pipeline.errors import ConfigError, InvalidTrialId
from pipeline.integrity import FLAG_DEFAULTS
from pipeline.record import SIGNIFICANCE_ORDER
from pipeline.sources import SOURCES
from pipeline.trial_ids import normalize_trial_id
from pipeline.validate import check_url

DEFAULT_CONFIG_PATH = "config.toml"

def source_defaults() -> dict[str, dict[str, Any]]:
    """``[sources.<name>]`` keys and defaults, as each source declares them (:data:`SOURCES`)."""
    return {name: dict(source.defaults) for name, source in SOURCES.items()}


# key -> (accepted python types, description used in messages)
_NUMBER = ((int, float), "a number")
_POS_INT = ((int,), "a whole number")
_BOOL = ((bool,), "true or false")
_STR = ((str,), "a string")
_STR_LIST = ((list,), "a list of strings")

SOURCE_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "base_url": _STR,
    "requests_per_second": _NUMBER,
    "concurrency": _POS_INT,
    "timeout": _NUMBER,
    "retries": _POS_INT,
    "user_agent": _STR,
    "enabled": _BOOL,
    "page_size": _POS_INT,
    "ids_per_request": _POS_INT,
    "max_retry_wait": _NUMBER,
    "max_response_mb": _NUMBER,
    "run_budget": _NUMBER,
    "full_sweep_days": _POS_INT,
}

QUERY_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "name": _STR,
    "cond": _STR,
    "term": _STR,
    "intr": _STR,
    "spons": _STR,
    "status": _STR_LIST,
    "backfill": _BOOL,
    "tags": _STR_LIST,
}

ALERT_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "channel": _STR,
    "name": _STR,
    "url": _STR,
    "url_env": _STR,
    "token_env": _STR,
    "path": _STR,
    "format": _STR,
    "smtp_host": _STR,
    "smtp_port": _POS_INT,
    "from": _STR,
    "to": _STR_LIST,
    "starttls": _BOOL,
    "ssl": _BOOL,
    "username": _STR,
    "password_env": _STR,
    "significance": _STR_LIST,
    "fields": _STR_LIST,
    "kinds": _STR_LIST,
    "trials": _STR_LIST,
    "tags": _STR_LIST,
    "queries": _STR_LIST,
    "sources": _STR_LIST,
    "timeout": _NUMBER,
    "failures": _BOOL,
    "batch_max_items": _POS_INT,
    "batch_max_bytes": _POS_INT,
}

ALERT_CHANNELS = ("webhook", "email", "folder", "apprise")
#: What ``alerts[].kinds`` may list: a field change (with missing / reappeared records),
#: a trial starting or stopping to match a query watch, a discrepancy between registry
#: copies, an integrity flag (raised or resolved).
ALERT_KINDS = ("field", "missing", "reappeared", "query", "discrepancy", "flag")
SIGNIFICANCES = SIGNIFICANCE_ORDER


@dataclass(frozen=True)
class SourceConfig:
    """Where one registry is and how politely to ask it."""

    name: str
    base_url: str
    requests_per_second: float
    concurrency: int
    timeout: float
    retries: int
    user_agent: str
    enabled: bool
    max_retry_wait: float
    max_response_mb: float
    run_budget: float
    page_size: int = 1000
    ids_per_request: int = 200
    full_sweep_days: int = 7

    @property
    def max_response_bytes(self) -> int:
        return int(self.max_response_mb * 1024 * 1024)


@dataclass(frozen=True)
class QueryWatch:
    """A ClinicalTrials.gov search whose every match is watched."""

    name: str
    cond: str | None = None
    term: str | None = None
    intr: str | None = None
    spons: str | None = None
    status: tuple[str, ...] = ()
    backfill: bool = False
    tags: tuple[str, ...] = ()

    def params(self) -> dict[str, str]:
        """The /studies query parameters this watch stands for."""
        out: dict[str, str] = {}
        for key in ("cond", "term", "intr", "spons"):
            value = getattr(self, key)
            if value:
                out[f"query.{key}"] = value
        if self.status:
            out["filter.overallStatus"] = ",".join(self.status)
        return out


@dataclass(frozen=True)
class AlertRule:
    """One delivery channel and the filter choosing what it is sent."""

    channel: str
    name: str
    options: dict[str, Any]
    significance: tuple[str, ...]
    fields: tuple[str, ...] = ()
    trials: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    queries: tuple[str, ...] = ()  # only these query watches' events (kind 'query'), whatever their trial
    failures: bool = True  # also send failure alerts (a trial failing run after run, and its recovery)
    kinds: tuple[str, ...] = ()  # change kinds wanted (field, missing, reappeared, query, discrepancy, flag); () = all


@dataclass(frozen=True)
class Config:
    """The validated configuration."""

    path: Path | None
    database_path: Path
    sources: dict[str, SourceConfig]
    trials: tuple[str, ...] = ()
    tags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    queries: tuple[QueryWatch, ...] = ()
    schedule: dict[str, str] = field(default_factory=dict)
    schedule_jitter: int = 300
    failure_alert_after: int = 3
    alerts: tuple[AlertRule, ...] = ()
    fetch_log_days: int = 90
    busy_timeout: float = 30.0
    flags: dict[str, int] = field(default_factory=lambda: dict(FLAG_DEFAULTS))

    def source(self, name: str) -> SourceConfig:
        return self.sources[name]

    def enabled_sources(self) -> list[str]:
        return [name for name, src in self.sources.items() if src.enabled]


def default_schedule() -> dict[str, str]:
    """The daemon's default cron expression per source (each source knows its registry's rhythm)."""
    return {name: source.schedule for name, source in SOURCES.items()}


def _check_type(value: Any, spec: tuple[tuple[type, ...], str], key: str) -> Any:
    types, description = spec
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(f"{key}: expected {description}, got {value!r}", key)
    if not isinstance(value, types):
        raise ConfigError(f"{key}: expected {description}, got {type(value).__name__} {value!r}", key)
    if isinstance(value, float) and not math.isfinite(value):
        # TOML allows inf and nan; nan passes every "> 0" check and inf crashes later
        raise ConfigError(f"{key}: expected a finite number, got {value!r}", key)
    if types == (int,) and value < 0:
        raise ConfigError(f"{key}: must not be negative, got {value!r}", key)
    if isinstance(value, str):
        _check_text(value, key)
    if types == (list,):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(f"{key}[{i}]: expected a string, got {item!r}", key)
            _check_text(item, f"{key}[{i}]")
    return value


def _check_text(value: str, key: str) -> None:
    """No control characters: a NUL or CR/LF in a path, URL or header crashes (or injects) later."""
    for i, ch in enumerate(value):
        if ord(ch) < 32 or 127 <= ord(ch) < 160:
            raise ConfigError(f"{key}: control character {ch!r} at position {i} in {value!r}", key)


def _check_table(table: Any, allowed: dict[str, Any] | set[str], key: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{key}: expected a table, got {type(table).__name__}", key)
    for name in table:
        if name not in allowed:
            where = f"{key}.{name}" if key else name
            known = ", ".join(sorted(allowed))
            raise ConfigError(f"{where}: unknown key (known keys here: {known})", where)
    return table


def _source(name: str, table: dict[str, Any], defaults: dict[str, Any]) -> SourceConfig:
    key = f"sources.{name}"
    _check_table(table, set(defaults), key)
    values = dict(defaults)
    for k, v in table.items():
        values[k] = _check_type(v, SOURCE_KEYS[k], f"{key}.{k}")
    values["base_url"] = check_url(values["base_url"], f"{key}.base_url")
    if not values["user_agent"].isascii():
        raise ConfigError(f"{key}.user_agent: must be ASCII (it is sent as an HTTP header)", f"{key}.user_agent")
    for k in ("requests_per_second", "timeout", "max_retry_wait", "max_response_mb", "run_budget"):
        if values[k] <= 0:
            raise ConfigError(f"{key}.{k}: must be greater than 0, got {values[k]!r}", f"{key}.{k}")
    # Values that end up in sleep() or a socket timeout must fit a time_t (else OverflowError).
    for k, lo, hi in (("timeout", 0, 86400), ("max_retry_wait", 0, 86400), ("requests_per_second", 1e-4, None)):
        if values[k] < lo or (hi is not None and values[k] > hi):
            where = f"at most {hi}" if hi is not None and values[k] > hi else f"at least {lo}"
            raise ConfigError(f"{key}.{k}: must be {where}, got {values[k]!r}", f"{key}.{k}")
    if values["concurrency"] < 1 or values["concurrency"] > 64:
        raise ConfigError(f"{key}.concurrency: must be between 1 and 64", f"{key}.concurrency")
    if values["retries"] < 0 or values["retries"] > 20:
        raise ConfigError(f"{key}.retries: must be between 0 and 20", f"{key}.retries")
    for k in ("page_size", "ids_per_request"):
        if k in values and not 1 <= values[k] <= 1000:
            raise ConfigError(f"{key}.{k}: must be between 1 and 1000", f"{key}.{k}")
    values = {k: (float(v) if isinstance(defaults.get(k), float) else v) for k, v in values.items()}
    fields_known = SourceConfig.__dataclass_fields__
    return SourceConfig(name=name, **{k: v for k, v in values.items() if k in fields_known})


def _trial_list(values: Any, key: str) -> tuple[str, ...]:
    _check_type(values, _STR_LIST, key)
    out: list[str] = []
    for i, raw in enumerate(values):
        try:
            trial = normalize_trial_id(raw)
        except InvalidTrialId as exc:
            raise ConfigError(f"{key}[{i}]: {exc}", key) from None
        if trial not in out:
            out.append(trial)
    return tuple(out)


def _typed_tables(items: Any, keys: dict[str, tuple[tuple[type, ...], str]], name: str, toml: str):
    """Yield ``(index, key path, checked values)`` for each table of an array of tables."""
    if not isinstance(items, list):
        raise ConfigError(f"{name}: expected an array of tables ({toml})", name)
    for i, table in enumerate(items):
        key = f"{name}[{i}]"
        _check_table(table, keys, key)
        yield i, key, {k: _check_type(v, keys[k], f"{key}.{k}") for k, v in table.items()}


def _unique_names(names: list[str], key: str, what: str) -> None:
    if len(set(names)) != len(names):
        raise ConfigError(f"{key}: two {what} share a name (give each a distinct `name`)", key)


def _queries(items: Any) -> tuple[QueryWatch, ...]:
    out = []
    for i, key, values in _typed_tables(items, QUERY_KEYS, "watch.queries", "[[watch.queries]]"):
        if not any(values.get(k) for k in ("cond", "term", "intr", "spons", "status")):
            raise ConfigError(f"{key}: a query needs at least one of cond, term, intr, spons, status", key)
        values.setdefault("name", values.get("cond") or values.get("term") or values.get("spons") or f"query{i}")
        for k in ("status", "tags"):
            if k in values:
                values[k] = tuple(s.upper() if k == "status" else s for s in values[k])
        out.append(QueryWatch(**values))
    _unique_names([q.name for q in out], "watch.queries", "queries")
    return tuple(out)


def _check_delivery_limits(values: dict[str, Any], key: str) -> None:
    """``timeout``, ``batch_max_items`` and ``batch_max_bytes`` of an alert rule, in range."""
    if "timeout" in values:
        t = values["timeout"]
        if not (isinstance(t, (int, float)) and math.isfinite(t) and 0 < t <= 86400):
            raise ConfigError(f"{key}.timeout: must be between 0 and 86400 seconds, got {t!r}", f"{key}.timeout")
    if "batch_max_items" in values and values["batch_max_items"] < 1:
        raise ConfigError(f"{key}.batch_max_items: must be 1 or more", f"{key}.batch_max_items")
    if "batch_max_bytes" in values and values["batch_max_bytes"] < 1024:
        raise ConfigError(
            f"{key}.batch_max_bytes: must be at least 1024 bytes, got {values['batch_max_bytes']}",
            f"{key}.batch_max_bytes",
        )


def _alerts(items: Any) -> tuple[AlertRule, ...]:
    out = []
    for i, key, values in _typed_tables(items, ALERT_KEYS, "alerts", "[[alerts]]"):
        channel = values.get("channel")
        if channel not in ALERT_CHANNELS:
            raise ConfigError(
                f"{key}.channel: must be one of {', '.join(ALERT_CHANNELS)}, got {channel!r}", f"{key}.channel"
            )
        significance = tuple(values.pop("significance", [s for s in SIGNIFICANCES if s != "other"]))
        for s in significance:
            if s not in SIGNIFICANCES:
                raise ConfigError(
                    f"{key}.significance: unknown significance {s!r} (known: {', '.join(SIGNIFICANCES)})",
                    f"{key}.significance",
                )
        trials = _trial_list(values.pop("trials", []), f"{key}.trials")
        fields_ = tuple(values.pop("fields", []))
        tags = tuple(values.pop("tags", []))
        queries = tuple(values.pop("queries", []))
        sources = tuple(values.pop("sources", []))
        for s in sources:
            if s not in SOURCES:
                raise ConfigError(f"{key}.sources: unknown source {s!r}", f"{key}.sources")
        failures = values.pop("failures", True)
        kinds = tuple(values.pop("kinds", []))
        for k in kinds:
            if k not in ALERT_KINDS:
                raise ConfigError(f"{key}.kinds: unknown kind {k!r} (known: {', '.join(ALERT_KINDS)})", f"{key}.kinds")
        values.pop("channel")
        name = values.pop("name", f"{channel}{i}")
        validate_alert_options(channel, values, key)
        _check_delivery_limits(values, key)
        out.append(
            AlertRule(
                channel=channel,
                name=name,
                options=values,
                significance=significance,
                fields=fields_,
                trials=trials,
                tags=tags,
                sources=sources,
                queries=queries,
                failures=failures,
                kinds=kinds,
            )
        )
    _unique_names([a.name for a in out], "alerts", "alert rules")
    return tuple(out)


TOP_KEYS = {"database", "sources", "watch", "schedule", "alerts", "flags"}


def _flags(table: Any) -> dict[str, int]:
    """``[flags]``: the integrity flags' thresholds, whole months from 1 to 1200."""
    values = _check_table(table, set(FLAG_DEFAULTS), "flags")
    out = dict(FLAG_DEFAULTS)
    for name, value in values.items():
        _check_type(value, _POS_INT, f"flags.{name}")
        if not 1 <= value <= 1200:
            raise ConfigError(f"flags.{name}: must be between 1 and 1200 months, got {value}", f"flags.{name}")
        out[name] = value
    return out


def parse_config(data: dict[str, Any], path: Path | None = None, base_dir: Path | None = None) -> Config:
    """Validate a parsed TOML document into a :class:`Config` (pure)."""
    _check_table(data, TOP_KEYS, "")
    base_dir = base_dir or (path.parent if path else Path.cwd())

    database = _check_table(data.get("database", {}), {"path", "fetch_log_days", "busy_timeout"}, "database")
    db_path = _check_type(database.get("path", "trialwatch.db"), _STR, "database.path")
    if not db_path.strip():
        raise ConfigError("database.path: must not be empty", "database.path")
    fetch_log_days = _check_type(database.get("fetch_log_days", 90), _POS_INT, "database.fetch_log_days")
    busy_timeout = float(_check_type(database.get("busy_timeout", 30.0), _NUMBER, "database.busy_timeout"))
    if not 0 <= busy_timeout <= 86400:
        raise ConfigError("database.busy_timeout: must be between 0 and 86400 seconds", "database.busy_timeout")
    database_path = Path(os.path.expanduser(db_path))
    if not database_path.is_absolute():
        database_path = base_dir / database_path

    defaults = source_defaults()
    sources_table = _check_table(data.get("sources", {}), set(defaults), "sources")
    sources = {name: _source(name, sources_table.get(name, {}), defaults[name]) for name in defaults}

    watch = _check_table(data.get("watch", {}), {"trials", "tags", "queries"}, "watch")
    trials = _trial_list(watch.get("trials", []), "watch.trials")
    tags_raw = watch.get("tags", {})
    tags_table = _check_table(tags_raw, set(tags_raw) if isinstance(tags_raw, dict) else set(), "watch.tags")
    tags = {name: _trial_list(ids, f"watch.tags.{name}") for name, ids in tags_table.items()}
    queries = _queries(watch.get("queries", []))

    schedule = default_schedule()
    schedule_table = _check_table(
        data.get("schedule", {}), {*schedule, "jitter", "failure_alert_after"}, "schedule"
    )
    for name in list(schedule):
        if name in schedule_table:
            schedule[name] = _check_type(schedule_table[name], _STR, f"schedule.{name}")
        validate_cron(schedule[name], f"schedule.{name}")
    jitter = _check_type(schedule_table.get("jitter", 300), _POS_INT, "schedule.jitter")
    if jitter < 0:
        raise ConfigError("schedule.jitter: must be 0 or more seconds", "schedule.jitter")
    failure_alert_after = _check_type(
        schedule_table.get("failure_alert_after", 3), _POS_INT, "schedule.failure_alert_after"
    )
    if failure_alert_after < 1:
        raise ConfigError("schedule.failure_alert_after: must be 1 or more runs", "schedule.failure_alert_after")

    alerts = _alerts(data.get("alerts", []))
    known_queries = {q.name for q in queries}
    for i, rule in enumerate(alerts):
        for name in rule.queries:
            if name not in known_queries:
                raise ConfigError(
                    f"alerts[{i}].queries: no query watch named {name!r} (known: {', '.join(sorted(known_queries)) or 'none'})",
                    f"alerts[{i}].queries",
                )
    flags = _flags(data.get("flags", {}))

    return Config(
        path=path,
        database_path=database_path,
        sources=sources,
        trials=trials,
        tags=tags,
        queries=queries,
        schedule=schedule,
        schedule_jitter=jitter,
        failure_alert_after=failure_alert_after,
        alerts=alerts,
        fetch_log_days=fetch_log_days,
        busy_timeout=busy_timeout,
        flags=flags,
    )


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the TOML file at ``path`` (ConfigError on any problem)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found: {p} (copy the shipped config.toml, or pass --config PATH)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    return parse_config(data, path=p.resolve())
