"""Progress of long runs: a live line on a terminal, periodic log lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO

#: A rate (and so an ETA) is shown only once this many seconds have passed: over the
#: first milliseconds it is noise (the first tick used to read "1000000.0/s").
MIN_RATE_SECONDS = 1.0


class Progress:
    """Callable ``(label, done, total)`` that shows done/total, rate and ETA.

    On a terminal the line is redrawn in place and is transient: :meth:`clear`
    removes it before a result line is printed (the next tick draws it again), and
    :meth:`close` removes it at the end.
    """

    def __init__(self, stream: TextIO | None = None, *, interval: float = 10.0, force_tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if force_tty is None else force_tty
        self.interval = interval if not self.tty else 0.1
        self.started: dict[str, tuple[float, int]] = {}
        self.last_shown: float | None = None
        self.active = False

    def __call__(self, label: str, done: int, total: int) -> None:
        now = time.monotonic()
        # The clock starts at the first tick, so its work is not counted in the rate.
        start, first = self.started.setdefault(label, (now, done))
        if done < total and self.last_shown is not None and now - self.last_shown < self.interval:
            return
        self.last_shown = now
        elapsed = now - start
        line = f"{label}: {done}/{total}"
        if elapsed >= MIN_RATE_SECONDS and done > first:
            rate = (done - first) / elapsed
            line += f" ({rate:.1f}/s, ETA {(total - done) / rate:.0f}s)"
        if self.tty:
            self.stream.write("\r\033[K" + line)
            self.active = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Remove the live line (on a terminal), so the next thing printed starts a clean line."""
        if self.tty and self.active:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.active = False

    def close(self) -> None:
        self.clear()
