"""How values are written to and read back from the database (pure).

JSON through orjson, raw payloads as zlib streams, and the public JSON form of a
stored change row.  Kept apart from the store so that pure modules (reports,
webhook payloads, tests) can use them without importing anything that does I/O.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def loads(text: str | bytes | None) -> Any:
    return None if text is None else orjson.loads(text)


try:  # ISA-L writes the same zlib format about four times faster (the mirror's hot path)
    from isal import isal_zlib as _fast_zlib
except ImportError:  # pragma: no cover - isal is a dependency; stdlib zlib is the fallback
    _fast_zlib = zlib


def compress(raw: bytes | str | None) -> bytes | None:
    """A raw payload as a zlib stream (readable by :func:`decompress` and any zlib)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    return _fast_zlib.compress(raw, 1)


def decompress(blob: bytes | None) -> bytes | None:
    return None if blob is None else zlib.decompress(blob)


def query_summary(change: dict[str, Any]) -> str:
    """A query event's sentence ("now matches query covid-recruiting")."""
    new = change.get("new")
    if isinstance(new, dict) and new.get("summary"):
        return str(new["summary"])
    return f"membership of query {change['field']} changed"


def change_date(row: dict[str, Any]) -> str:
    """The date a change is shown with: the registry's own date when it gave one, else ``detected_at``.

    (An imported WHO export's changes carry the record's "last refreshed" date, a
    backfilled version's the version's date; ``detected_at`` stays when trialwatch
    recorded the change, which ``--since`` windows and alert cursors go by.)
    """
    return row.get("registry_date") or row["detected_at"]


def change_json(row: dict[str, Any]) -> dict[str, Any]:
    """The public JSON form of a stored change (the keys of ``changes --json``)."""
    out = {k: row[k] for k in ("trial_id", "source", "field", "old", "new", "significance", "detected_at")}
    out["registry_date"] = row.get("registry_date")
    out["kind"] = row.get("kind", "field")
    if row.get("added") is not None or row.get("removed") is not None:
        out["added"] = row.get("added")
        out["removed"] = row.get("removed")
    out["backfilled"] = bool(row.get("backfilled"))
    return out


def decode_change(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("old", "new", "added", "removed"):
        if key in row:
            row[key] = loads(row[key])
    if "backfilled" in row:
        row["backfilled"] = bool(row["backfilled"])
    return row
