"""The "verified" stamp: a database trialwatch checked and then wrote itself needs no new check.

Before its first write every store makes sure the file is sound (``PRAGMA
quick_check``, issue 9 item 15: a corrupt database is never written).  On a mirror of
20,000 trials that reads every one of its ~120,000 pages: 0.15-0.3 CPU s, paid again
by every command and every daemon job, although nothing but trialwatch touched the
file since the last check.

So a store that found the file sound, and saw no write but its own while it had it
open, leaves a stamp beside it when it closes (``<db>.verified``): the file's
identity and its state as ``stat`` reports it (size, modification and change times in
nanoseconds, the same for the WAL).  The next store skips the check when the file is
still in exactly that state.  Any other write to the file (a scramble, a truncation, a
copy over it, a hand edit with ``sqlite3``) changes its change time, which no program
can set back; a different file at the path has another inode and database id.  The
full check still runs at least once every :data:`MAX_AGE` seconds, so damage that
leaves no trace in ``stat`` (a disk that rots under a file nobody writes) is found
within a day.

Timestamps come from a coarse clock (a few milliseconds): a write landing in the same
tick as the stamp's recorded state would leave the times unchanged.  As git does for
its index ("racily clean" entries), a stamp is only kept once its own modification
time is later than every time it records: a write after it then shows.

While a store is open, "no write but its own" is watched around each of its
transactions by a :func:`session_mark`: the database file's ``stat`` (a raw write by
any program moves its change time) and SQLite's ``data_version``, which moves when
any other connection commits (whatever process it is in).  The WAL is left out of
the mark (only SQLite connections write it, and data_version sees them), which saves
two ``stat`` calls a transaction, and the database's stat is the one taken for the
identity check: two calls where there were five.  Each call is cheap (~2 µs), but it
releases the interpreter lock to the WHO fetch threads, and a run that writes 1,000
trials, a transaction each, waited on those hand-overs.  The stamp itself records
the WAL too.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

#: A stamp older than this (seconds) is not trusted: the full check runs again.
MAX_AGE = 24 * 3600

#: The stamp waits at most this long (seconds) for the clock to tick past the file's times.
_TICK_WAIT = 0.1

State = list[Any]
Mark = tuple[Any, ...]


def stamp_path(db: str) -> Path:
    return Path(f"{db}.verified")


def file_state(db: str) -> State | None:
    """What ``stat`` says of the database and its WAL (an empty or absent WAL alike)."""
    try:
        st = os.stat(db)
    except OSError:
        return None
    wal: list[int] | None = None
    try:
        w = os.stat(f"{db}-wal")
        if w.st_size:
            wal = [w.st_size, w.st_mtime_ns, w.st_ctime_ns]
    except FileNotFoundError:
        pass
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, wal]


def session_mark(conn: sqlite3.Connection, st: os.stat_result) -> Mark:
    """The file as this connection's writes have left it: the database file's ``stat``
    (``st``, taken by the caller) and SQLite's ``data_version`` (moves with every commit
    by another connection)."""
    version = conn.execute("PRAGMA data_version").fetchone()[0]
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, version


def stamp_matches(db: str, database_id: str | None) -> float | None:
    """When the file was last fully checked, if it is exactly as the last store that
    verified it left it and that check is recent; else None."""
    try:
        data = json.loads(stamp_path(db).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or database_id is None:
        return None
    at = data.get("at")
    if not isinstance(at, (int, float)) or not 0 <= time.time() - at < MAX_AGE:
        return None
    if data.get("database_id") != database_id or data.get("state") != file_state(db):
        return None
    return float(at)


def write_stamp(db: str, database_id: str | None, verified_at: float) -> bool:
    """Leave the stamp for the file as it is now; False when it could not be made safe."""
    path = stamp_path(db)
    tmp = path.with_name(path.name + ".tmp")
    try:
        state = file_state(db)
        if state is None or database_id is None:
            return False
        times = [state[3], state[4], *(state[5][1:] if state[5] else [])]
        deadline = time.monotonic() + _TICK_WAIT
        while True:
            tmp.write_text(json.dumps({"database_id": database_id, "at": verified_at, "state": state}))
            os.replace(tmp, path)
            if os.stat(path).st_mtime_ns > max(times):
                return True  # a later write to the database will show in its times
            if time.monotonic() > deadline:
                path.unlink()
                return False
            time.sleep(0.002)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
        return False


def drop_stamp(db: str) -> None:
    try:
        stamp_path(db).unlink()
    except OSError:
        pass
