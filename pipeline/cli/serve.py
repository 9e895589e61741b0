"""``trialwatch serve``: browse the database in a web browser (Datasette, read-only)."""

from __future__ import annotations

import socket

import click

from pipeline.errors import StoreError


def register(cli: click.Group) -> None:
    cli.add_command(serve_cmd)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Keep loopback on a shared machine and put a reverse proxy in front.")
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0 picks a free one).")
@click.pass_obj
def serve_cmd(app, host, port):
    """Browse the trials, their versions and every change in a web browser.

    Runs Datasette over the database, read-only: pages for the trials (facets,
    full-text search), each trial (its registry copies side by side, its timeline,
    a diff between any two versions) and the change log (facets, an Atom feed).
    The daemon keeps writing meanwhile.  Needs the extra: pip install 'trialwatch[serve]'.
    """
    from pipeline.serve import INSTALL_HINT, DatasetteMissing, build_datasette

    try:
        import datasette  # noqa: F401
        import uvicorn
    except ImportError:
        raise DatasetteMissing(INSTALL_HINT) from None
    path = app.config.database_path
    if not path.exists():
        raise StoreError(f"no database at {path} yet: run `trialwatch refresh` first")
    app.store().close()  # an older schema is migrated (views, keys); a newer or corrupt one refused
    ds = build_datasette(path)
    try:
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"Serving {path} read-only at http://{shown}:{sock.getsockname()[1]}/ (Ctrl-C to stop)", err=True)
    server = uvicorn.Server(uvicorn.Config(ds.app(), log_level="warning", lifespan="on"))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
