"""The ``trialwatch`` command line: a thin layer over the library.

Commands live in the modules beside this one (one per area: ``core``, ``bulk``,
``unattended``, ``tools``; ``options`` and ``common`` hold what they share) and
register on the group defined here.  Every user mistake becomes a one-sentence message and an exit
code: 2 for usage, configuration and trial-ID errors (nothing written), 1 for a run
that finished with failures or a store error, 3 when another refresh holds the lock.
"""

from __future__ import annotations

import importlib
import os
import sys
from functools import cached_property
from pathlib import Path

import click

from pipeline import __version__
from pipeline.config import DEFAULT_CONFIG_PATH, Config, load_config
from pipeline.errors import ConfigError, InvalidTrialId, LockHeld, StoreError, TrialwatchError

EXIT_USAGE = 2
EXIT_LOCKED = 3

COMMAND_MODULES = (
    "pipeline.cli.core",
    "pipeline.cli.tools",
    "pipeline.cli.bulk",
    "pipeline.cli.unattended",
    "pipeline.cli.trial",
    "pipeline.cli.serve",
)


class AppContext:
    """What commands share: the config path, the config (loaded on first use)."""

    def __init__(self, config_path: str):
        self.config_path = Path(config_path)

    @cached_property
    def config(self) -> Config:
        return load_config(self.config_path)

    def store(self):
        from pipeline.store import open_store

        return open_store(self.config)


class TrialwatchGroup(click.Group):
    """Turns trialwatch's own errors into clear messages and exit codes."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # The reader went away (`trialwatch export | head`): not an error.
            _quiet_broken_pipe()
            ctx.exit(0)
        except (ConfigError, InvalidTrialId) as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(EXIT_USAGE)
        except LockHeld as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(EXIT_LOCKED)
        except StoreError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)
        except TrialwatchError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)
        except OSError as exc:  # a file the user named cannot be read or written
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            click.echo(f"Error: {exc.strerror or exc}{where}", err=True)
            ctx.exit(1)


@click.group(cls=TrialwatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    default=lambda: os.environ.get("TRIALWATCH_CONFIG", DEFAULT_CONFIG_PATH),
    show_default="config.toml, or $TRIALWATCH_CONFIG",
    help="Configuration file to use.",
)
@click.version_option(__version__, prog_name="trialwatch")
@click.pass_context
def cli(ctx: click.Context, config_path: str) -> None:
    """trialwatch: watch clinical trial registrations and record every change.

    Fetches watched trials from ClinicalTrials.gov and the WHO ICTRP portal,
    compares them with the stored snapshots and records each field that changed.
    """
    ctx.obj = AppContext(config_path)


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(cli)


def _quiet_broken_pipe() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush of a closed pipe says nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (a test runner's stdout)
        pass


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(prog_name="trialwatch")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:  # raised outside a command (while click prints help or a usage error)
        _quiet_broken_pipe()
        sys.exit(0)
