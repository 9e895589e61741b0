"""Tools around the pipeline: extract, simulate, demo."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.cli.common import SOURCE_CHOICE
from pipeline.errors import BlockedPageError, ParseError

def register(cli: click.Group) -> None:
    cli.add_command(extract_cmd)
    cli.add_command(simulate_cmd)
    cli.add_command(demo_cmd)


@click.command("extract")
@click.option("--source", type=SOURCE_CHOICE, required=True, help="Which registry the file came from.")
@click.option("--trial", "trial_id", help="Trial ID the WHO page was requested for (default: read from the page).")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def extract_cmd(source, trial_id, file):
    """Parse a saved registry response and print the normalized JSON.

    FILE is a ClinicalTrials.gov API v2 study (GET /studies/{id}), a /studies list
    page (every study is printed), a history version (/api/int/studies/{id}/history/{v}),
    or a saved WHO Trial2.aspx page.  Use it to check the extractor on a page of your own.
    """
    from pipeline.sources import SOURCES

    try:
        body = file.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read {file}: {exc.strerror or exc}") from None
    registry = SOURCES[source]
    try:
        out = registry.extract(body, trial_id)
    except BlockedPageError as exc:
        raise click.ClickException(f"{file}: blocked or error page, not a trial record: {exc}") from None
    except ParseError as exc:
        raise click.ClickException(f"{file}: not a {registry.label} record this command can read: {exc}") from None
    if out is None:
        raise click.ClickException(f"{file}: the {registry.label} not-found page (no such trial)")
    click.echo(json.dumps(out, ensure_ascii=False, indent=2))


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command("simulate")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback).")
@click.option("--allow-remote", is_flag=True,
              help="Allow a --host outside loopback (the simulator then answers anyone who can reach it).")
@click.option("--port", default=8765, show_default=True, type=int, help="Port (0 picks a free one).")
@click.option("--size", default=50, show_default=True, type=int, help="Number of trials in the corpus.")
@click.option("--seed", default=1, show_default=True, type=int, help="Corpus seed (same seed, same corpus).")
@click.option("--change-rate", default=0.0, show_default=True, type=float,
              help="Share of trials changed per simulated day, beyond the scripted day-1 changes.")
def simulate_cmd(host, port, size, seed, change_rate, allow_remote):
    """Serve the registry simulator (ClinicalTrials.gov API v2 and WHO pages).

    Point sources.ctgov.base_url at http://HOST:PORT/api/v2 and sources.who.base_url
    at http://HOST:PORT.  POST /_sim/advance?days=N makes simulated time pass.
    It listens on loopback only, unless --allow-remote.
    """
    import errno

    from pipeline.simulator.server import serve

    if not allow_remote and not _is_loopback(host):
        raise click.BadParameter(
            f"{host} is not a loopback address: the simulator would answer (and take /_sim commands from) "
            "anyone who can reach it; pass --allow-remote to listen there anyway",
            param_hint="'--host'",
        )
    try:
        serve(host=host, port=port, size=size, seed=seed, change_rate=change_rate)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"port {port} on {host} is already in use (another simulator?); choose another with --port, "
                "or --port 0 for a free one"
            ) from None
        raise click.ClickException(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None


@click.command("demo")
@click.option("--dir", "workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the demo's config and database here (default: a temporary folder).")
@click.option("--trials", default=12, show_default=True, type=int, help="How many trials to watch.")
def demo_cmd(workdir, trials):
    """Run the pipeline end to end against the built-in registry simulator.

    Starts the simulator on a loopback port, watches a dozen trials, refreshes,
    lets a simulated day pass while the simulator changes some records, refreshes
    again and prints the changes it found.
    """
    from pipeline.demo import run_demo

    run_demo(workdir=workdir, n_trials=trials, echo=click.echo)
