"""Time the pages of ``trialwatch serve`` on a database (e.g. one ``bench/run.py --keep`` left).

    .venv/bin/python bench/serve_pages.py PATH/TO/trialwatch.db [--repeat 5]

Datasette's in-process client (no socket), a fresh Datasette per database, each page
fetched once to warm up and then ``--repeat`` times; prints the median and worst
milliseconds per page.  The trial page is timed for the trial with the most changes.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.serve import build_datasette  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("db")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    conn = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    trials, changes = (conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("trials", "changes"))
    busiest = conn.execute("SELECT trial_id FROM changes GROUP BY trial_id ORDER BY count(*) DESC LIMIT 1").fetchone()
    word = conn.execute("SELECT substr(title, 1, instr(title || ' ', ' ') - 1) FROM trials WHERE title != ''"
                        " LIMIT 1 OFFSET 100").fetchone()
    conn.close()
    print(f"{args.db}: {trials} trials rows, {changes} changes")
    pages = {
        "trials": "/trialwatch/current_trials",
        "trials, search": f"/trialwatch/current_trials?_search={word[0] if word else 'study'}",
        "trials, status facet": "/trialwatch/current_trials?status=Recruiting",
        "trial page": f"/trial/{busiest[0] if busiest else 'NCT00000000'}",
        "changes": "/trialwatch/change_log",
        "changes, status only": "/trialwatch/change_log?significance=status",
        "changes.atom": "/changes.atom",
    }
    ds = build_datasette(args.db)

    async def run() -> None:
        for name, path in pages.items():
            first = await ds.client.get(path)
            assert first.status_code == 200, (path, first.status_code)
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                await ds.client.get(path)
                times.append((time.perf_counter() - started) * 1000)
            print(f"{name:24} {statistics.median(times):8.0f} ms median {max(times):8.0f} ms worst   {path}")

    asyncio.run(run())


if __name__ == "__main__":
    main()
