"""CLI commands, one module per area; each exposes ``register(group)``.

What several command modules share lives here: the ``--source`` choice and the
check that a chosen source is switched on.
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
