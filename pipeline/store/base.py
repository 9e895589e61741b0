"""The store's foundation: the connection, transactions, meta, and the database's health.

Every write goes through :meth:`StoreBase._write`: one ``BEGIN IMMEDIATE`` transaction,
rolled back whole on any error, with SQLite's errors turned into a :class:`StoreError`
a person can act on (:func:`describe_error`).  Before its first write a store makes
sure that the file is sound (``PRAGMA quick_check``: a corrupt database is never
written) and, before every write, that it is still the file it opened (not deleted or
replaced under a long-running process).

Opening brings the schema up to date (:mod:`pipeline.store.schema`): a new database is
created whole, an older one migrated in steps, a newer one refused.
"""

from __future__ import annotations

import functools
import inspect
import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import sqlite_utils

import pipeline.store.verified as verified
from pipeline.errors import DatabaseReplaced, StoreError
from pipeline.store.migrations import MIGRATIONS
from pipeline.store.schema import SCHEMA, SCHEMA_VERSION, execute_script

#: What this process first found at each database path (see StoreBase.check_identity).
_FIRST_SEEN: dict[str, tuple[Any, ...]] = {}


class StoreBase:
    """The connection to one database file, its transactions and its ``meta`` table."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0):
        self.path = Path(path)
        self._fspath = str(path)
        self._sound = False  # set once quick_check passed (or the stamp vouched), before the first write
        self.verified_by: str | None = None  # "quick_check" or "stamp", once sound
        self._verified_at: float | None = None  # when the file was last fully checked
        self._own_state: verified.Mark | None = None  # the file as our last transaction left it
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise StoreError(describe_error(exc, self.path, opening=True)) from None
        except OSError as exc:
            raise StoreError(f"cannot create database folder for {path}: {exc.strerror or exc}") from None
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self._identity = self._file_identity()
        try:
            self._open_schema()
            if self._identity is not None:
                _FIRST_SEEN.setdefault(str(self.path.resolve()), self._full_identity())
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(describe_error(exc, self.path)) from None
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        """Close; a store that verified the file and saw no write but its own leaves the
        stamp that spares the next store the full check (:mod:`pipeline.store.verified`)."""
        stamp = (self._sound and self._identity is not None and self._verified_at is not None
                 and self._mark() == self._own_state)
        try:
            database_id = self.get_meta("database_id") if stamp else None
        except sqlite3.Error:
            stamp, database_id = False, None
        self.conn.close()
        if stamp:
            verified.write_stamp(self._fspath, database_id, self._verified_at)  # type: ignore[arg-type]
        elif self._sound and self._identity is not None:
            verified.drop_stamp(self._fspath)

    def checkpoint(self) -> None:
        """Fold the WAL into the database file and empty it (before measuring or copying
        the file); the store's own write, so it keeps the file's stamp good."""
        untouched = self._own_state is not None and self._mark() == self._own_state
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            if untouched:
                self._own_state = self._mark()

    def __enter__(self) -> "StoreBase":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- schema version -------------------------------------------------------------

    def _open_schema(self) -> None:
        """Create a new database, migrate an older one in steps, refuse a newer one."""
        try:
            has_meta = self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
            ).fetchone()
            version = int(self.get_meta("schema_version") or 1) if has_meta else None
        except sqlite3.Error as exc:
            raise StoreError(describe_error(exc, self.path)) from None
        if version is None:
            self._write(self._create_schema)
            return
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database {self.path} has schema version {version}, written by a newer trialwatch "
                f"(this one knows up to version {SCHEMA_VERSION}): upgrade trialwatch; nothing was written"
            )
        # SQLite's way to rebuild tables (step 4): keys off while steps run (a pragma, so
        # outside their transactions); each step checks them itself before it commits.
        self.conn.execute("PRAGMA foreign_keys=OFF")
        try:
            while version < SCHEMA_VERSION:
                version = self._write(self._migrate_step, version)
        finally:
            self.conn.execute("PRAGMA foreign_keys=ON")

    def _create_schema(self) -> None:
        if self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
            return  # another process created it while we waited for the lock
        execute_script(self.conn, SCHEMA)
        self._put_meta("schema_version", str(SCHEMA_VERSION))
        self._put_meta("database_id", uuid.uuid4().hex)

    def _migrate_step(self, version: int) -> int:
        """One migration, in the caller's transaction; returns the version now stored."""
        current = int(self.get_meta("schema_version") or 1)
        if current != version:  # another process migrated while we waited for the lock
            return current
        MIGRATIONS[version - 1](self.db)
        self._put_meta("schema_version", str(version + 1))
        return version + 1

    # -- transactions -------------------------------------------------------------

    def _write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` in one IMMEDIATE transaction; roll back and raise StoreError on failure."""
        st = self._check_same_file()
        first = not self._sound
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(describe_error(exc, self.path)) from None
        try:
            if not self._sound:
                self._check_sound()
            elif self._own_state is not None and st is not None and verified.session_mark(self.conn, st) != self._own_state:
                self._own_state = None  # another program wrote since our last transaction: no stamp
            result = fn(*args, **kwargs)
            self.conn.execute("COMMIT")
            return result
        except BaseException as exc:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if isinstance(exc, sqlite3.Error):
                raise StoreError(describe_error(exc, self.path)) from None
            raise
        finally:
            if self._sound and self._identity is not None and (self._own_state is not None or first):
                self._own_state = self._mark()

    def _check_sound(self) -> None:
        """Refuse to write into a corrupt file (once per store, inside its first write).

        The whole file is checked (``PRAGMA quick_check``: ~0.15-0.3 CPU s on a 500 MB
        database), unless the stamp of the last store that checked it says that nothing
        but trialwatch wrote it since, within the day (:mod:`pipeline.store.verified`:
        any other write shows in the file's change time).  A cheaper check was tried
        before (a one-row read of each table between daily full checks) and dropped: it
        missed a scrambled ``trials`` page and let ``refresh`` write its first rows, and
        "a corrupt database is never written" is the promise (issue 9, item 15).
        """
        at = None
        if self._identity is not None and self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone():  # (not while a new database is being created)
            at = verified.stamp_matches(self._fspath, self.get_meta("database_id"))
        if at is not None:
            self.verified_by, self._verified_at = "stamp", at
        else:
            problems = [row[0] for row in self.conn.execute("PRAGMA quick_check(3)")]
            if problems != ["ok"]:
                lines = [ln.strip() for p in problems for ln in p.splitlines() if ln.strip() and "***" not in ln]
                raise StoreError(_corrupt(self.path, f"quick_check: {lines[0] if lines else problems[0]}"))
            self.verified_by, self._verified_at = "quick_check", time.time()
        self._sound = True

    # -- file identity ----------------------------------------------------------------

    def _file_identity(self) -> tuple[int, int] | None:
        if self._fspath in (":memory:", ""):
            return None
        try:
            st = os.stat(self._fspath)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def _check_same_file(self) -> os.stat_result | None:
        """Raise DatabaseReplaced unless the path is still the file this store opened; its stat."""
        if self._identity is None:
            return None
        try:
            st = os.stat(self._fspath)
        except FileNotFoundError:
            raise DatabaseReplaced(replaced_message(self.path)) from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise DatabaseReplaced(replaced_message(self.path))
        return st

    def _mark(self) -> verified.Mark | None:
        """The file as this store's own writes leave it (:func:`verified.session_mark`)."""
        try:
            return verified.session_mark(self.conn, os.stat(self._fspath))
        except (OSError, sqlite3.Error):
            return None

    def _full_identity(self) -> tuple[Any, ...]:
        # st_ino alone is not enough across opens: a new file may reuse a freed inode
        return (*(self._identity or ()), self.get_meta("database_id"))

    def check_identity(self) -> None:
        """Raise StoreError if the database is not the one this process first opened at its path.

        A long-running process (the daemon) opens the store for each job and calls
        this first: when the file was deleted or replaced under it, going on would
        silently start a new history.  The file's (st_dev, st_ino) and the random
        ``database_id`` stored at creation must both match.  Writes also check,
        before each transaction, that the file is still the one this store opened.
        """
        self._check_same_file()
        if self._identity is not None:
            first = _FIRST_SEEN.get(str(self.path.resolve()))
            if first is not None and first != self._full_identity():
                raise DatabaseReplaced(replaced_message(self.path))

    # -- meta -----------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        self._write(self._put_meta, key, value)

    def _put_meta(self, key: str, value: str | None) -> None:
        self.db["meta"].upsert({"key": key, "value": value}, pk="key")

    def _advance_meta(self, key: str, value: int) -> None:
        """Move an integer in ``meta`` forward to ``value``; never back (compare-and-set)."""
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
            " WHERE CAST(meta.value AS INTEGER) < CAST(excluded.value AS INTEGER) OR meta.value IS NULL",
            (key, str(int(value))),
        )


def in_chunks(values: Iterable[Any], size: int = 500) -> Iterator[tuple[list[Any], str]]:
    """``values`` in lists of at most ``size``, each with its placeholders (``"?,?,?"``) for
    an ``IN (...)``: SQLite caps the parameters one statement may bind."""
    values = list(values)
    for i in range(0, len(values), size):
        chunk = values[i : i + size]
        yield chunk, ",".join("?" * len(chunk))


def translate_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a public store method so SQLite errors leave it as StoreError (reads included)."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def gen_wrapper(self, *args: Any, **kwargs: Any):
            try:
                yield from method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                raise StoreError(describe_error(exc, self.path)) from None

        return gen_wrapper

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise StoreError(describe_error(exc, self.path)) from None

    return wrapper


def describe_error(exc: sqlite3.Error, path: Path, *, opening: bool = False) -> str:
    """One sentence saying what went wrong with the database and what to do."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return f"database {path} is locked by another process (try again when it finishes): {text}"
    if "full" in text:
        return f"disk full while writing {path}: nothing was half-written; free space and run again"
    if "readonly" in text or "read-only" in text:
        return f"database {path} is read-only: {text}"
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return _corrupt(path, text)
    if opening:
        return f"cannot open database {path}: {text}"
    return f"database error on {path}: {text}"


def _corrupt(path: Path, detail: str) -> str:
    return (
        f"database {path} is corrupt ({detail}): restore it from a backup, or inspect it with "
        f"`sqlite3 {path} 'PRAGMA integrity_check'`; nothing was written"
    )


def replaced_message(path: Path) -> str:
    return (
        f"database {path} was deleted or replaced while trialwatch had it open: stopped rather than start "
        f"a new history; restore the file, or restart trialwatch to use the new one"
    )
