"""A watchlist on the registry simulator (real sockets, a real SQLite file), for the issue 9 fault tests."""

from __future__ import annotations

from pipeline.config import parse_config
from pipeline.refresh import refresh
from pipeline.simulator import Corpus, SimulatorServer
from pipeline.store import Store

from dbcheck import check_invariants

STUDIES = "/api/v2/studies"
WHO_PAGE = "/Trial2.aspx"


class SimWorld:
    """A simulator, a config watching ``trials`` (all of the corpus by default) and a store."""

    def __init__(self, tmp_path, *, size=12, seed=1, trials=None, ctgov=None, who=None, queries=()):
        self.tmp_path = tmp_path
        self.corpus = Corpus(size=size, seed=seed)
        self.server = SimulatorServer(self.corpus).start()
        self.ids = list(self.corpus.ids)
        self.nct = [t for t in self.ids if t.startswith("NCT")]
        self.store = None
        self.configure(trials=self.ids if trials is None else trials, ctgov=ctgov, who=who, queries=queries)

    def configure(self, *, trials, ctgov=None, who=None, queries=()):
        if self.store is not None:
            self.store.close()
        common = {"requests_per_second": 1000, "timeout": 2, "retries": 1}
        self.watched = list(trials)
        self.config = parse_config(
            {
                "database": {"path": str(self.tmp_path / "tw.db")},
                "sources": {
                    "ctgov": {"base_url": self.server.ctgov_url, **common, **(ctgov or {})},
                    "who": {"base_url": self.server.who_url, **common, "concurrency": 4, **(who or {})},
                },
                "watch": {"trials": self.watched, "queries": list(queries)},
            },
            base_dir=self.tmp_path,
        )
        self.store = Store(self.config.database_path)

    def refresh(self, **kw):
        kw.setdefault("backoff_base", 0.01)
        return refresh(self.config, self.store, **kw)

    def changes(self, kind=None):
        """Field changes (details included; discrepancy and flag events are tested in test_trial_view)."""
        return [c for c in self.store.changes(include_details=True, include_events=False)
                if kind is None or c["kind"] == kind]

    def trial(self, trial_id, source):
        (row,) = [r for r in self.store.trials(source) if r["trial_id"] == trial_id]
        return row

    def check(self):
        return check_invariants(self.config.database_path)

    def close(self):
        if self.store is not None:
            self.store.close()
        self.server.stop()
