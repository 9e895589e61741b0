"""What ``--since`` means (pure): ``last``, an ISO date or time, or an age like ``7d``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

_AGE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Since:
    """Either "everything not yet reported" (``last``) or "detected at or after ``at``"."""

    last: bool = False
    at: str | None = None           # UTC, 'YYYY-MM-DDTHH:MM:SSZ' like every stored timestamp

    def describe(self) -> str:
        return "since the last report" if self.last else f"since {self.at}"


def parse_since(value: str, now: datetime) -> Since:
    """``last`` | ``YYYY-MM-DD[THH:MM[:SS]][Z|±HH:MM]`` | ``N`` + m/h/d/w; ValueError otherwise.

    Every value outside what a date can hold (``99999999d``, ``9999-12-31T23:30-05:00``,
    which is in the year 10000 in UTC) is a ValueError too, never an OverflowError.
    """
    text = value.strip().lower()
    if text == "last":
        return Since(last=True)
    age = _AGE.match(text)
    if not age:
        return Since(at=parse_instant(value, expected=_EXPECTED))
    try:
        when = now - timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
    except (OverflowError, ValueError):
        raise ValueError(f"{value.strip()!r} reaches back before the year 1") from None
    return Since(at=_utc_text(when))


_EXPECTED = "'last', an ISO date or time (2026-11-18, 2026-11-18T09:00Z) or an age like 7d, 12h, 2w"


def parse_instant(value: str, *, expected: str = "an ISO date or time (2026-11-18, 2026-11-18T09:00Z)") -> str:
    """An ISO date or time as the store's UTC text 'YYYY-MM-DDTHH:MM:SSZ' (naive means UTC).

    ValueError, with a message for the user, for text that is not one or that falls
    outside the years 1 to 9999 once in UTC.
    """
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected {expected}; got {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    try:
        return _utc_text(when)
    except (OverflowError, ValueError):
        raise ValueError(f"{value.strip()!r} is outside the years 1 to 9999 in UTC") from None


def _utc_text(when: datetime) -> str:
    utc = when.astimezone(timezone.utc)  # OverflowError past the year 9999 or before the year 1
    # not strftime("%Y"): it does not pad years before 1000 to four digits on every platform
    return f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"
