"""Options several commands share, as reusable decorators.

Each option is declared once so it parses, checks and documents the same way on
every command: ``--since`` (an age, an ISO date or time, or ``last``), ``--limit``,
``--significance`` (checked against the known values) and ``--full``.
"""

from __future__ import annotations

from datetime import datetime, timezone

import click

from pipeline.record import SIGNIFICANCE_ORDER

SINCE_HELP = "an age (7d, 12h, 30m, 2w), an ISO date or time (2026-11-18, 2026-11-18T09:00Z)"


def parse_since_option(value: str | None, *, allow_last: bool = True):
    """The one place a ``--since`` value is parsed: a :class:`~pipeline.report.window.Since`.

    Raises ``click.BadParameter`` (exit 2, usage error) on anything it cannot read,
    including an age too large for the calendar (``99999999d``).  The message does
    not repeat the option's name: click puts it in front.
    """
    from pipeline.report.window import parse_since

    if value is None:
        return None
    if not allow_last and value.strip().lower() == "last":
        raise click.BadParameter("'last' is not accepted here; give " + SINCE_HELP)
    try:
        return parse_since(value, datetime.now(timezone.utc))
    except OverflowError:
        raise click.BadParameter(f"{value!r} reaches beyond the calendar; give a smaller age or a date") from None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def since_option(*, default: str | None = None, allow_last: bool = True, help: str):
    """``--since`` parsed by :func:`parse_since_option` into ``since`` (a ``Since`` or None)."""

    def callback(ctx, param, value):
        return parse_since_option(value, allow_last=allow_last)

    return click.option(
        "--since",
        "since",
        default=default,
        show_default=default is not None,
        callback=callback,
        metavar="WHEN",
        help=help,
    )


def limit_option(default: int | None = None, help: str = "At most this many rows."):
    return click.option(
        "--limit",
        type=click.IntRange(min=1),
        default=default,
        show_default=default is not None,
        help=help,
    )


significance_option = click.option(
    "--significance",
    multiple=True,
    type=click.Choice(list(SIGNIFICANCE_ORDER), case_sensitive=False),
    help="Only these significances (repeatable).",
)

full_option = click.option(
    "--full",
    is_flag=True,
    help="Print whole values (default: long values are cut around the part that changed, to fit the terminal).",
)


#: Width of table output that does not go to a terminal (a file or a pipe): fixed,
#: so the text is stable whatever window the command was started from.
PIPE_WIDTH = 120


def output_style(full: bool = False):
    """``(width, Style)`` for standard output.

    On a terminal: its width, and colour unless ``NO_COLOR`` is set (or TERM=dumb).
    Elsewhere (a pipe, a file): always :data:`PIPE_WIDTH` and no colour, whatever
    ``$COLUMNS`` says, so the text is stable.  ``full``: no width
    limit (whole values).
    """
    import os
    import shutil
    import sys

    from pipeline.render_table import Style

    tty = sys.stdout.isatty()
    color = tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    if full:
        width = None
    elif tty:
        width = shutil.get_terminal_size((PIPE_WIDTH, 24)).columns
    else:
        width = PIPE_WIDTH
    return width, Style(color)
