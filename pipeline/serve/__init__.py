"""``trialwatch serve``: the database in a browser, through Datasette, read-only.

Datasette (the optional extra ``trialwatch[serve]``) opens the file with
``mode=ro``: it reads while the daemon writes (WAL: readers never block the writer,
nor the writer them) and never writes itself.  Not ``--immutable``: that promises
SQLite the file never changes, and the daemon changes it.

Shipped with this package: ``metadata.json`` (titles, facets, search, sort),
``templates/`` (the trial page, the navigation) and :mod:`.plugin` (the trial page,
the Atom feed, links from trial IDs).  The tables' views come with the schema
(``current_trials``, ``change_log``: :mod:`pipeline.store.schema`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.errors import TrialwatchError

HERE = Path(__file__).resolve().parent
INSTALL_HINT = "trialwatch serve needs Datasette: pip install 'trialwatch[serve]' (or: pip install datasette)"

#: Datasette settings: short SQL time limits keep one heavy query from holding a reader.
SETTINGS: dict[str, Any] = {
    "sql_time_limit_ms": 3000,
    "facet_time_limit_ms": 500,
    "truncate_cells_html": 300,
    "default_page_size": 50,
    "suggest_facets": False,   # a query per column on every page (1 s of 1.1 s on 20,000 trials)
    "max_returned_rows": 1000,
    "allow_download": False,   # the whole file on a shared machine: use a copy instead
}


class DatasetteMissing(TrialwatchError):
    """Datasette is not installed."""


def metadata() -> dict[str, Any]:
    return json.loads((HERE / "metadata.json").read_text(encoding="utf-8"))


def build_datasette(db_path: str | Path, *, settings: dict[str, Any] | None = None):
    """A Datasette over ``db_path`` (read-only, named ``trialwatch``) with trialwatch's pages."""
    try:
        from datasette.app import Datasette
        from datasette.database import Database
        from datasette.plugins import pm
    except ImportError:
        raise DatasetteMissing(INSTALL_HINT) from None
    from pipeline.serve import plugin

    if not pm.is_registered(plugin):
        pm.register(plugin, name="trialwatch")
    ds = Datasette(
        [],
        metadata=metadata(),
        template_dir=str(HERE / "templates"),
        static_mounts=[("trialwatch-static", str(HERE / "static"))],
        settings={**SETTINGS, **(settings or {})},
    )
    ds.add_database(Database(ds, path=str(db_path), is_mutable=True), name=plugin.DATABASE)
    return ds
