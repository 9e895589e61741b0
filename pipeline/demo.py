"""``trialwatch demo``: the whole pipeline on the built-in simulator, end to end.

Real sockets, a real SQLite file, the same refresh function as live use: only the
registries are simulated.  Day 1 of the simulator is scripted, so the demo always
shows a status change, a sample-size change, an edited primary outcome and a
record that disappeared.  The WHO portal's copy of the first trial is held back
(``Corpus.hold_who``), as the seed document's was, so the demo also shows a
discrepancy between the two registries, and the integrity flags of the watched trials.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

from pipeline.clock import utcnow
from pipeline.config import load_config
from pipeline.refresh import refresh
from pipeline.render_table import changes_table
from pipeline.report import build_report
from pipeline.report.load import load_trial_keys
from pipeline.store import open_store

DEMO_CONFIG = """\
# trialwatch demo configuration: both sources point at the built-in simulator.
[database]
path = "trialwatch-demo.db"

[sources.ctgov]
base_url = "{ctgov_url}"
requests_per_second = 50
timeout = 10
retries = 2

[sources.who]
base_url = "{who_url}"
requests_per_second = 50
concurrency = 4
timeout = 10
retries = 2

[watch]
trials = [{trials}]
"""


def write_demo_config(folder: Path, ctgov_url: str, who_url: str, trial_ids: list[str]) -> Path:
    path = folder / "config.toml"
    path.write_text(
        DEMO_CONFIG.format(
            ctgov_url=ctgov_url, who_url=who_url, trials=", ".join(f'"{t}"' for t in trial_ids)
        ),
        encoding="utf-8",
    )
    return path


def _reuse_hint(config_path: Path, port: int, size: int) -> str:
    """How to use the kept demo config again: its simulator stops with the demo."""
    return (
        f"the simulator stops with the demo; to use {config_path} again, start it on the same port:\n"
        f"  trialwatch simulate --port {port} --size {size} &\n"
        f"  trialwatch --config {config_path} refresh\n"
        "(a new simulator starts again at simulated day 0, so its first refresh records day 1's changes undone)"
    )


#: What each discrepancy and flag means, in one line (the README has the exact rules).
MEANINGS = {
    "discrepancy": "two registries' copies of one trial disagree; the older copy is named first",
    "outcome_switching": "a primary outcome was added, removed, moved or reworded after the trial started",
    "results_overdue": "primary completion was over a year ago and ClinicalTrials.gov has no results",
    "stale_status": "it still says (not yet) recruiting, yet its completion date has passed or it is not updated",
    "retrospective_registration": "the trial was registered after it started",
}


def explain_trial_events(store, echo: Callable[[str], None]) -> None:
    """One example of a discrepancy and of each integrity flag found, with what it means."""
    flags = store.trial_flags()
    shown: set[str] = set()
    for f in flags:
        what = f["kind"] if f["kind"] == "discrepancy" else f["subject"]
        if what in shown:
            continue
        shown.add(what)
        count = sum(1 for g in flags if (g["kind"] if g["kind"] == "discrepancy" else g["subject"]) == what)
        echo(f"{what} ({count} open): {MEANINGS.get(what, '')}")
        echo(f"  e.g. {f['trial_key']}: {f['detail'].get('summary', '')}")
    if not shown:
        echo("no discrepancies or integrity flags")
    echo("(`trialwatch trial ID` shows a trial's copies side by side; `trialwatch flags` lists them all)")


def run_demo(workdir: Path | None = None, n_trials: int = 12, echo: Callable[[str], None] = print) -> int:
    """Run the demo; returns the number of changes found on the second refresh."""
    from pipeline.simulator.corpus import Corpus
    from pipeline.simulator.server import SimulatorServer

    temp = None
    if workdir is None:
        temp = tempfile.TemporaryDirectory(prefix="trialwatch-demo-")
        folder = Path(temp.name)
    else:
        folder = Path(workdir)
        folder.mkdir(parents=True, exist_ok=True)
    try:
        corpus = Corpus(size=max(n_trials, 12), seed=1)
        with SimulatorServer(corpus) as server:
            trial_ids = corpus.ids[:n_trials]
            echo(f"registry simulator on {server.base_url} ({len(corpus.ids)} trials)")
            config_path = write_demo_config(folder, server.ctgov_url, server.who_url, trial_ids)
            config = load_config(config_path)
            echo(f"watching {len(trial_ids)} trials; config {config_path}")
            with open_store(config) as store:
                first = refresh(config, store, trigger="demo")
                echo(f"refresh 1 (first sighting): {first.summary()}")
                held = corpus.nct_ids[0]
                corpus.hold_who(held)
                echo(f"the WHO portal's copy of {held} stops being refreshed (as the seed document's did)")
                events = corpus.advance(days=1)
                echo(f"simulated day passes: the simulator changed {len(events)} thing(s) upstream")
                second = refresh(config, store, trigger="demo")
                echo(f"refresh 2: {second.summary()}")
                rows = store.changes(after_id=None)
                rows = [r for r in rows if r["run_id"] == second.run_id]
                echo("")
                echo(changes_table(rows))
                report = build_report(rows, titles=store.trial_titles(), trial_keys=load_trial_keys(store),
                                      generated_at=utcnow())
                echo(f"report: {report.summary()}")  # trials counted once, whatever their registries
                echo("")
                explain_trial_events(store, echo)
                echo("")
                third = refresh(config, store, trigger="demo")
                echo(f"refresh 3 (nothing changed upstream): {third.summary()}")
                echo(f"database: {config.database_path}" + (" (temporary; use --dir to keep it)" if temp else ""))
                if temp is None:
                    echo(_reuse_hint(config_path, server.port, len(corpus.ids)))
                return len(rows)
    finally:
        if temp is not None:
            temp.cleanup()
