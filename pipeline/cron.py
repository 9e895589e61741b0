"""Cron expressions for the daemon's schedules.

Five fields (minute hour day month weekday) as in crontab, or six with seconds
first.  Parsing is APScheduler's ``CronTrigger``; this module only maps the two
forms onto it so config validation and the daemon agree on what an expression means.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING

from pipeline.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from apscheduler.triggers.cron import CronTrigger


def cron_trigger(expression: str, *, jitter: int | None = None, timezone: tzinfo | str | None = None) -> CronTrigger:
    """A CronTrigger for a 5- or 6-field expression (ValueError when invalid)."""
    fields = expression.split()
    tz = timezone or "UTC"
    if len(fields) == 5:
        minute, hour, day, month, day_of_week = fields
        second = "0"
    elif len(fields) == 6:
        second, minute, hour, day, month, day_of_week = fields
    else:
        raise ValueError(f"expected 5 fields (or 6 with seconds first), got {len(fields)}")
    # crontab counts weekdays from 0=Sunday; APScheduler from 0=Monday.  Translate
    # numeric weekdays so "1-5" means Monday to Friday as every crontab reader expects.
    day_of_week = _crontab_weekdays(day_of_week)
    # Imported here: loading the config (every command, every refresh) needs no
    # scheduler unless it has schedules to check (~25 ms of start-up CPU).
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger(
        second=second,
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=day_of_week,
        jitter=jitter,
        timezone=tz,
    )


_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _crontab_weekdays(spec: str) -> str:
    def one(token: str) -> str:
        return _NAMES[int(token)] if token.isdigit() and 0 <= int(token) <= 7 else token

    parts = []
    for item in spec.split(","):
        step = ""
        if "/" in item:
            item, step = item.split("/", 1)
            step = "/" + step
        if "-" in item:
            lo, hi = item.split("-", 1)
            if lo.isdigit() and hi.isdigit() and int(hi) == 7 and int(lo) > 0:
                hi = "6"
                parts.append(f"{one(lo)}-{one(hi)}{step}")
                parts.append("sun")
                continue
            parts.append(f"{one(lo)}-{one(hi)}{step}")
        else:
            parts.append(one(item) + step)
    return ",".join(parts)


def validate_cron(expression: str, key: str) -> None:
    """Raise ConfigError naming ``key`` when ``expression`` is not a valid schedule."""
    try:
        cron_trigger(expression)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{key}: invalid cron expression {expression!r}: {exc}", key) from None
    # Valid fields can still name a date that never comes (``0 0 31 2 *``): a schedule
    # that never fires would leave the daemon silently idle.
    if not next_fire_times(expression, datetime(2000, 1, 1, tzinfo=dt_timezone.utc), 1):
        raise ConfigError(f"{key}: cron expression {expression!r} never fires", key)


def next_fire_times(expression: str, start: datetime, count: int = 5) -> list[datetime]:
    """The next ``count`` fire times after ``start`` (pure: no clock, no sleeping)."""
    trigger = cron_trigger(expression, timezone=start.tzinfo or "UTC")
    out: list[datetime] = []
    previous = None
    now = start
    for _ in range(count):
        nxt = trigger.get_next_fire_time(previous, now)
        if nxt is None:
            break
        out.append(nxt)
        previous = nxt
        now = nxt
    return out
