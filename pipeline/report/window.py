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
    """``last`` | ``YYYY-MM-DD[THH:MM[:SS]][Z|±HH:MM]`` | ``N`` + m/h/d/w.

    ValueError (or OverflowError, for an age beyond the calendar) otherwise; the
    message does not name the option (the caller's error already does).
    """
    text = value.strip().lower()
    if text == "last":
        return Since(last=True)
    age = _AGE.match(text)
    if age:
        when = now - timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
    else:
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"expected 'last', an ISO date or time (2026-11-18, 2026-11-18T09:00Z) "
                f"or an age like 7d, 12h, 2w; got {value!r}"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
    return Since(at=when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
