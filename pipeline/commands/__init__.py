"""CLI commands, one module per area; each exposes ``register(group)``.

What several command modules share lives here: the ``--source`` choice and the
check that a chosen source is switched on.
"""

from __future__ import annotations

from typing import Iterable

import click

from pipeline.errors import ConfigError
from pipeline.record import SOURCES

SOURCE_CHOICE = click.Choice(list(SOURCES))


def check_sources_enabled(config, sources: Iterable[str]) -> None:
    """ConfigError (exit 2) when a source chosen on the command line is disabled."""
    for s in sources:
        if not config.sources[s].enabled:
            raise ConfigError(
                f"source {s!r} is disabled in the config (sources.{s}.enabled = false)", f"sources.{s}.enabled"
            )
