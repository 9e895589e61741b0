"""Full-text search over each trial's current snapshot, and streaming the current records out."""

from __future__ import annotations

import sqlite3
from typing import Any, Iterator

from pipeline.errors import StoreError
from pipeline.store.base import StoreBase
from pipeline.store.schema import SEARCH_INSERT


def search_texts(record: dict[str, Any]) -> tuple[str, str, str]:
    """What ``trialwatch search`` indexes of a record: (titles, conditions, interventions)."""

    def lines(value: Any) -> str:
        if isinstance(value, list):
            return "\n".join(v for v in value if isinstance(v, str))
        return value if isinstance(value, str) else ""

    title = "\n".join(lines(record.get(k)) for k in ("public_title", "scientific_title", "acronym"))
    return title, lines(record.get("conditions")), lines(record.get("interventions"))


class SearchMixin(StoreBase):
    SEARCH_INDEX_VERSION = "1"

    def ensure_search_index(self) -> bool:
        """Index snapshots written before the search index existed (once); True if rebuilt."""
        if self.get_meta("search_index") == self.SEARCH_INDEX_VERSION:
            return False
        self.rebuild_search_index()
        return True

    def rebuild_search_index(self) -> None:
        """Re-index every trial's current snapshot from scratch."""

        def rebuild() -> None:
            self.conn.execute("DELETE FROM search_fts")
            self.conn.execute(
                SEARCH_INSERT.format(snapshot="s.id").replace(
                    "FROM snapshots s WHERE s.id = s.id",
                    "FROM trials t JOIN snapshots s ON s.id = t.snapshot_id",
                )
            )
            self._put_meta("search_index", self.SEARCH_INDEX_VERSION)

        self._write(rebuild)

    def search(self, match: str, *, limit: int = 20, source: str | None = None) -> list[dict[str, Any]]:
        """Trials whose current title, conditions or interventions match an FTS5 expression.

        Best match first (bm25, titles weighted above conditions and interventions).
        """
        sql = (
            "SELECT f.trial_id, f.source, t.state, t.recruitment_status, t.title,"
            " snippet(search_fts, -1, '[', ']', '...', 12) AS snippet,"
            " bm25(search_fts, 0, 0, 3.0, 2.0, 1.0) AS score"
            " FROM search_fts f JOIN trials t ON t.snapshot_id = f.rowid"
            " WHERE search_fts MATCH ?"
        )
        params: list[Any] = [match]
        if source:
            sql += " AND f.source = ?"
            params.append(source)
        sql += " ORDER BY score LIMIT ?"
        params.append(limit)
        try:
            return [dict(r) for r in self.db.query(sql, params)]
        except sqlite3.OperationalError as exc:
            if "malformed" in str(exc) or "locked" in str(exc):
                raise
            raise StoreError(f"bad search expression {match!r}: {exc}") from None

    def iter_current_json(self, source: str | None = None, *, include_missing: bool = False) -> Iterator[str]:
        """The current record of each trial as stored JSON text (streamed, by trial ID)."""
        sql = "SELECT s.record FROM trials t JOIN snapshots s ON s.id = t.snapshot_id"
        sql += " WHERE t.state IN ('present', 'missing')" if include_missing else " WHERE t.state = 'present'"
        params: list[Any] = []
        if source:
            sql += " AND t.source = ?"
            params.append(source)
        sql += " ORDER BY t.trial_id, t.source"
        cur = self.conn.cursor()
        cur.arraysize = 500
        for (record,) in cur.execute(sql, params):
            yield record
