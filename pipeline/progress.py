"""Progress of long runs: a live line on a terminal, periodic log lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Callable ``(label, done, total)`` that shows done/total, rate and ETA."""

    def __init__(self, stream: TextIO | None = None, *, interval: float = 10.0, force_tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if force_tty is None else force_tty
        self.interval = interval if not self.tty else 0.1
        self.started: dict[str, float] = {}
        self.last_shown: float | None = None
        self.active = False

    def __call__(self, label: str, done: int, total: int) -> None:
        now = time.monotonic()
        start = self.started.setdefault(label, now)
        if done < total and self.last_shown is not None and now - self.last_shown < self.interval:
            return
        self.last_shown = now
        elapsed = max(now - start, 1e-6)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 else 0.0
        line = f"{label}: {done}/{total} ({rate:.1f}/s, ETA {eta:.0f}s)"
        if self.tty:
            self.stream.write("\r\033[K" + line)
            if done >= total:
                self.stream.write("\n")
            self.active = done < total
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.active:
            self.stream.write("\n")
            self.stream.flush()
            self.active = False
