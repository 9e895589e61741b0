"""The refresh lock: never two refreshes of the same database at once.

An advisory ``flock`` on ``<database>.lock``, held for the whole run.  The kernel
drops it when the holder exits, however it exits (SIGKILL included), so a crash
never leaves a stale lock behind.  The file records the holder's PID for messages.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from pipeline.errors import LockHeld, StoreError


class RefreshLock:
    """Context manager around the database's refresh lock."""

    def __init__(self, database_path: str | Path, *, wait: bool = False, timeout: float | None = None):
        self.path = Path(str(database_path) + ".lock")
        self.wait = wait
        self.timeout = timeout
        self._fd: int | None = None

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot create the lock file {self.path}: {exc.strerror or exc}") from None
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not self.wait or (deadline is not None and time.monotonic() > deadline):
                    holder = self.holder()
                    os.close(fd)
                    raise LockHeld(
                        f"another trialwatch refresh (pid {holder}) is running on this database; "
                        "use --wait to wait for it to finish"
                    ) from None
                time.sleep(0.2)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass  # a full disk: the PID is only for messages, the flock is what locks
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "RefreshLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
