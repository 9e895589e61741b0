"""Every lock trialwatch takes, and its policy: who waits, who gives up, what it says.

All are advisory ``flock`` locks on a file next to what they protect.  The kernel
drops a flock when its holder exits, however it exits (SIGKILL included), so a crash
never leaves a stale lock behind, and taking one is atomic: of two processes that
try at the same instant, exactly one gets it.  A PID is written into the lock file
for messages only; no decision is ever made from a stored PID (a PID outlives its
process and is reused, most visibly PID 1 in a container).

``RefreshLock`` (``<database>.lock``)
    Held for a whole run by everything that writes trials: ``refresh``, the daemon's
    jobs, ``deliver``, ``backfill`` and ``import-ictrp``.  Commands either wait for the
    holder (``--wait``) or stop with :class:`LockHeld` (exit 3).
``DaemonLock`` (``<database>.daemon.lock``)
    Held for the daemon's whole life: one daemon per database.  A second one stops
    with :class:`DaemonRunning` naming the first one's PID.
``config_lock`` (``<config>.lock``)
    Held around the read-modify-write of ``config.toml`` by ``watch add|remove``, so
    two edits at once both land (see :mod:`pipeline.watchlist`).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from pipeline.errors import LockHeld, StoreError, TrialwatchError

#: How long a new daemon tries for the single-instance lock before giving up.  Long
#: enough to ride out ``trialwatch status`` probing it, short enough to fail fast.
DAEMON_LOCK_WAIT = 3.0
#: How long ``watch add|remove`` waits for another edit of the config to finish.
CONFIG_LOCK_WAIT = 30.0


class DaemonRunning(TrialwatchError):
    """Another daemon holds this database's single-instance lock (exit 1)."""


class FileLock:
    """An exclusive (or shared) flock on ``path``, as a context manager.

    ``wait=False`` tries once; ``wait=True`` polls until ``timeout`` (None: forever)
    or until ``should_stop()`` is true.  On failure ``acquire`` raises what
    :meth:`busy` builds.  ``note`` is written into the file once the lock is held.
    """

    def __init__(self, path: str | Path, *, wait: bool = False, timeout: float | None = None,
                 shared: bool = False, poll: float = 0.1):
        self.path = Path(path)
        self.wait = wait
        self.timeout = timeout
        self.shared = shared
        self.poll = poll
        self._fd: int | None = None

    def holder(self) -> str:
        """What the holder wrote into the lock file (its PID), for messages."""
        try:
            return self.path.read_text().split("\n", 1)[0].strip() or "unknown"
        except OSError:
            return "unknown"

    def busy(self) -> Exception:
        return LockHeld(f"{self.path} is locked by another process (pid {self.holder()})")

    def note(self) -> str:
        return f"{os.getpid()}\n"

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot create the lock file {self.path}: {exc.strerror or exc}") from None

    def acquire(self, should_stop=lambda: False) -> bool:
        """Take the lock; False only when ``should_stop()`` became true while waiting."""
        fd = self._open()
        mode = (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except BlockingIOError:
                if should_stop():
                    os.close(fd)
                    return False
                if not self.wait or (deadline is not None and time.monotonic() >= deadline):
                    os.close(fd)
                    raise self.busy() from None
                time.sleep(self.poll)
        if not self.shared:
            try:
                os.ftruncate(fd, 0)
                os.write(fd, self.note().encode())
            except OSError:
                pass  # a full disk: the note is only for messages, the flock is what locks
        self._fd = fd
        return True

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class RefreshLock(FileLock):
    """The database's refresh lock: never two runs that write trials at once."""

    def __init__(self, database_path: str | Path, *, wait: bool = False, timeout: float | None = None,
                 poll: float = 0.2):
        super().__init__(Path(str(database_path) + ".lock"), wait=wait, timeout=timeout, poll=poll)

    def busy(self) -> Exception:
        return LockHeld(
            f"another trialwatch refresh (pid {self.holder()}) is running on this database; "
            "use --wait to wait for it to finish"
        )


class DaemonLock(FileLock):
    """One daemon per database, held from start to exit (the OS drops it on any death)."""

    def __init__(self, database_path: str | Path, *, timeout: float = DAEMON_LOCK_WAIT):
        self.database_path = Path(database_path)
        super().__init__(Path(str(database_path) + ".daemon.lock"), wait=True, timeout=timeout)
        self.started_at: str | None = None

    def note(self) -> str:
        from pipeline.clock import utcnow

        self.started_at = utcnow()
        return f"{os.getpid()}\n{self.started_at}\n"

    def info(self) -> dict[str, str]:
        """``{"pid": ..., "started_at": ...}`` as the holder wrote them (may be stale: messages only)."""
        try:
            lines = self.path.read_text().splitlines()
        except OSError:
            lines = []
        return {"pid": (lines[0].strip() if lines else "") or "unknown",
                "started_at": (lines[1].strip() if len(lines) > 1 else "") or "unknown"}

    def busy(self) -> Exception:
        info = self.info()
        return DaemonRunning(
            f"a trialwatch daemon (pid {info['pid']}, started {info['started_at']}) is already running on "
            f"{self.database_path}; stop it first (SIGTERM)"
        )


def daemon_running(database_path: str | Path) -> dict[str, str] | None:
    """The running daemon's pid and start time, or None when no daemon holds the lock.

    Probes with a shared lock taken and dropped at once; a daemon starting in that
    instant retries for :data:`DAEMON_LOCK_WAIT` seconds, so the probe never stops it.
    """
    lock = DaemonLock(database_path)
    try:
        fd = os.open(lock.path, os.O_RDONLY | os.O_CLOEXEC)  # read-only: status never creates or writes
    except OSError:
        return None  # no lock file: no daemon ever ran here
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return lock.info()
    finally:
        os.close(fd)  # closing drops the probe's shared lock
    return None


def config_lock(config_path: str | Path, *, timeout: float = CONFIG_LOCK_WAIT) -> FileLock:
    """The lock around a read-modify-write of the config file (a sidecar ``<config>.lock``)."""
    real = Path(os.path.realpath(config_path))
    lock = FileLock(real.with_name(real.name + ".lock"), wait=True, timeout=timeout)

    def busy() -> Exception:
        return LockHeld(f"{real} is being edited by another process (pid {lock.holder()}); try again")

    lock.busy = busy  # type: ignore[method-assign]
    return lock
