"""What several command modules share.

The ``--source`` choice, the check that a chosen source is switched on, the
``--wait/--no-wait`` option of the commands that take the refresh lock (the lock
itself: :mod:`pipeline.lock`), and failure lines grouped with a count.
"""

from __future__ import annotations

from typing import Iterable

import click

from pipeline.errors import ConfigError
from pipeline.sources import SOURCES


class SourceChoice(click.Choice):
    """``--source``: the names in :data:`pipeline.sources.SOURCES`, read when the option is used."""

    def __init__(self) -> None:
        super().__init__([])

    @property
    def choices(self):  # noqa: D401 - click reads this attribute
        return tuple(SOURCES)

    @choices.setter
    def choices(self, value) -> None:
        pass


SOURCE_CHOICE = SourceChoice()


def check_sources_enabled(config, sources: Iterable[str]) -> None:
    """ConfigError (exit 2) when a source chosen on the command line is disabled."""
    for s in sources:
        if not config.sources[s].enabled:
            raise ConfigError(
                f"source {s!r} is disabled in the config (sources.{s}.enabled = false)", f"sources.{s}.enabled"
            )


def failure_lines(failures: Iterable[tuple[str, str, str]], limit: int = 20) -> list[str]:
    """The ``failed:`` lines of a run: identical errors once, with the trials and a count (pure).

    ``failures`` are (what, source, error).  At most ``limit`` lines, then one saying how
    many more there are.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for what, source, error in failures:
        groups.setdefault((source, error), []).append(what)
    lines = []
    for (source, error), whats in groups.items():
        if len(whats) == 1:
            lines.append(f"failed: {whats[0]} ({source}): {error}")
            continue
        shown = ", ".join(whats[:3]) + (f" and {len(whats) - 3} more" if len(whats) > 3 else "")
        lines.append(f"failed: {shown} ({source}): {error} (\u00d7{len(whats)})")
    if len(lines) > limit:
        rest = sum(len(w) for w in list(groups.values())[limit:])
        lines = lines[:limit] + [f"... and {rest} more failures (see the fetch_log table)"]
    return lines


def wait_option(default: bool = False):
    """``--wait/--no-wait``: wait for the refresh lock's holder, or exit 3 at once."""
    what = "wait for it (default), or exit 3" if default else "wait for it, or exit 3 (default)"
    return click.option("--wait/--no-wait", default=default,
                        help=f"If another refresh or import is running on the database: {what}.")
