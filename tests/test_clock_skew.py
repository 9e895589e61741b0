"""Issue 9 item 4: a clock that runs ahead for a while must not starve the trials it stamped.

Real refresh runs against the simulator, each cut short by a small ``run_budget``; the
one clock (``pipeline.clock.utcnow``, wherever it was imported) runs 190 days ahead for
two runs and is then corrected.  Whatever order the runs take, every trial must be
checked again once the runs after the correction have made as many checks as there
are trials (round robin by run, not by timestamp).
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

import pipeline.clock

from sim_world import STUDIES, WHO_PAGE, SimWorld

REAL_UTCNOW = pipeline.clock.utcnow


@pytest.fixture
def clock(monkeypatch):
    """Patch every module's ``utcnow`` to the real clock plus ``clock["days"]`` days."""
    offset = {"days": 0}

    def skewed() -> str:
        now = datetime.now(timezone.utc) + timedelta(days=offset["days"])
        return now.strftime("%Y-%m-%dT%H:%M:%SZ")

    for name, module in list(sys.modules.items()):
        if (name == "pipeline" or name.startswith("pipeline.")) and getattr(module, "utcnow", None) is REAL_UTCNOW:
            monkeypatch.setattr(module, "utcnow", skewed)
    return offset


def checked_in(world, run_id) -> set[str]:
    """The trials a run asked the registry about (from the fetch log's URLs).

    A request cut at the end of the run's budget is no check: its trials are deferred
    (``RequestAbandoned``) and rightly asked first by the next run.
    """
    out: set[str] = set()
    rows = world.store.conn.execute(
        "SELECT url FROM fetch_log WHERE run_id = ? AND (error IS NULL OR error NOT LIKE '%budget%')", (run_id,)
    )
    for (url,) in rows:
        params = parse_qs(urlsplit(url).query)
        for key in ("TrialID", "filter.ids"):
            for value in params.get(key, []):
                out.update(v for v in value.split(",") if v)
    return out


@pytest.mark.parametrize("source", ["who", "ctgov"])
def test_trials_checked_while_the_clock_ran_ahead_are_checked_again(tmp_path, clock, source):
    world = SimWorld(tmp_path, size=24)
    try:
        ids = world.ids if source == "who" else world.nct
        assert world.refresh(sources=[source]).counts["new"] == len(ids)  # baseline, no budget pressure
        slow = {"run_budget": 0.35, "concurrency": 1} if source == "who" else {"run_budget": 0.35, "ids_per_request": 2}
        world.configure(trials=world.ids, **{source: slow})
        world.server.set_faults([{"match": WHO_PAGE if source == "who" else STUDIES, "kind": "timeout", "delay": 0.1}])

        clock["days"] = 190
        skewed = set()
        for _ in range(2):
            result = world.refresh(sources=[source])
            assert result.counts["deferred"] > 0, "the budget must cut every run short for this test to mean anything"
            skewed |= checked_in(world, result.run_id)
        clock["days"] = 0

        seen: set[str] = set()
        checks = 0
        for _ in range(40):
            result = world.refresh(sources=[source])
            got = checked_in(world, result.run_id)
            assert got, "a run checked nothing"
            seen |= got
            checks += len(got)
            if checks >= len(ids):
                break
        starved = sorted((set(ids) - seen) & skewed)
        assert not starved, f"{len(starved)} trials checked while the clock was ahead were never checked again"
        assert seen == set(ids)
        assert world.changes() == []
    finally:
        world.close()


ALL = ["RECRUITING", "NOT_YET_RECRUITING", "ACTIVE_NOT_RECRUITING", "COMPLETED", "TERMINATED", "WITHDRAWN",
       "SUSPENDED", "ENROLLING_BY_INVITATION", "UNKNOWN"]


def test_a_query_synced_while_the_clock_ran_ahead_misses_no_update(tmp_path, clock):
    """With /version down, a sync under a clock 190 days ahead must not move the window or the sweep past today."""
    world = SimWorld(tmp_path, size=40, trials=[], queries=[{"name": "all", "status": ALL}])
    try:
        world.corpus.change_rate = 0.3
        assert world.refresh(sources=["ctgov"]).counts["queries_loaded"] == 1
        members = world.store.query_members("all")

        clock["days"] = 190
        world.corpus.advance(1)
        world.server.set_faults([{"match": "/api/v2/version", "kind": "500"}])
        skewed = world.refresh(sources=["ctgov"])
        assert skewed.counts["queries_synced"] == 1
        clock["days"] = 0
        world.server.clear_faults()

        events = world.corpus.advance(3)
        assert {e["trial_id"] for e in events} & members, "the test needs updates to members after the skew"
        corrected = world.refresh(sources=["ctgov"])
        assert corrected.counts["queries_swept"] == 1  # the sweep stamped 190 days ahead is not trusted
        # Every update the registry made is in the mirror: asking for each member finds nothing new.
        check = world.refresh(sources=["ctgov"], trial_ids=sorted(world.store.query_members("all")))
        assert check.counts["failed"] == 0
        assert check.counts["changed"] == 0, "updates posted after the skew were never fetched by the query"
    finally:
        world.close()
