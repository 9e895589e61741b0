"""The one clock every stored timestamp comes from (UTC, ISO 8601, seconds)."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> str:
    """Now, UTC, ISO 8601 with seconds (the format of every timestamp we store)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
