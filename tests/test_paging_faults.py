"""Issue 9 items 2 and 3: a paging loop, or an answer about another study, is never a deletion.

Over real sockets against the simulator (fault kinds ``paging_loop`` and ``wrong_trial``):
the IDs a ``filter.ids`` batch never answered fail for the run, a loop is detected at
the first repeated token or page (not after 10,000 requests), the run budget is
checked between pages, and a query watch's paging (first load, incremental, sweep)
fails the same way instead of recording deletions.
"""

from __future__ import annotations

import time

import pytest

from sim_world import STUDIES, SimWorld

ALL = ["RECRUITING", "NOT_YET_RECRUITING", "ACTIVE_NOT_RECRUITING", "COMPLETED", "TERMINATED", "WITHDRAWN",
       "SUSPENDED", "ENROLLING_BY_INVITATION", "UNKNOWN"]


def studies_requests(world, run_id):
    return world.store.conn.execute(
        "SELECT COUNT(*) FROM fetch_log WHERE run_id = ? AND url LIKE '%/studies?%'", (run_id,)
    ).fetchone()[0]


def delete(world, trial_ids):
    for trial_id in trial_ids:
        world.corpus.get(trial_id).deleted = True
    world.corpus.generation += 1


@pytest.mark.parametrize("mode", ["same", "fresh", "empty"])
def test_a_paging_loop_on_a_watchlist_batch_fails_the_unanswered_ids(tmp_path, mode):
    world = SimWorld(tmp_path, size=16, ctgov={"page_size": 4, "ids_per_request": 50, "run_budget": 5})
    try:
        assert world.refresh(sources=["ctgov"]).counts["failed"] == 0
        delete(world, world.nct[-2:])  # really deleted, but a loop never shows it
        world.server.set_faults([{"match": STUDIES, "kind": "paging_loop", "mode": mode}])
        started = time.monotonic()
        result = world.refresh(sources=["ctgov"])
        assert time.monotonic() - started < 5
        # caught at the first repeat, or at the page cap (the pages 14 IDs need, plus 5 empty ones)
        assert studies_requests(world, result.run_id) <= -(-len(world.nct) // 4) + 5
        answered = 0 if mode == "empty" else 4
        assert result.counts["missing"] == 0 and result.counts["failed"] == len(world.nct) - answered
        assert result.exit_code == 1
        assert all("paging loop" in e for _, _, e in result.failures), result.failures
        assert world.changes() == []
        world.server.clear_faults()
        healed = world.refresh(sources=["ctgov"])
        assert healed.counts["missing"] == 2 and healed.counts["failed"] == 0  # the real deletions, once
        world.check()
    finally:
        world.close()


def test_a_repeated_next_page_token_is_a_loop_even_with_new_studies(tmp_path):
    """A token that comes back is a loop whatever the page holds (the batch stops there)."""
    world = SimWorld(tmp_path, size=16, ctgov={"page_size": 2, "ids_per_request": 50})
    try:
        world.refresh(sources=["ctgov"])
        world.server.set_faults([{"match": STUDIES, "kind": "paging_loop", "mode": "same", "token": "T"}])
        result = world.refresh(sources=["ctgov"])
        assert result.counts["missing"] == 0 and result.counts["failed"] == len(world.nct) - 2
        assert studies_requests(world, result.run_id) == 2
    finally:
        world.close()


@pytest.mark.parametrize("sweep", [False, True])
def test_a_paging_loop_in_a_query_watch_fails_the_query(tmp_path, sweep):
    world = SimWorld(tmp_path, size=40, trials=[], ctgov={"page_size": 5, "run_budget": 5},
                     queries=[{"name": "all", "status": ALL}])
    try:
        assert world.refresh(sources=["ctgov"]).counts["queries_loaded"] == 1
        members = world.store.query_members("all")
        delete(world, sorted(members)[-2:])
        world.corpus.advance(1)  # the registry's data moved: the query is not skipped
        world.server.set_faults([{"match": STUDIES, "kind": "paging_loop", "mode": "fresh"}])
        started = time.monotonic()
        result = world.refresh(sources=["ctgov"], full_sweep=sweep)
        assert time.monotonic() - started < 5
        assert studies_requests(world, result.run_id) <= 8
        assert result.counts["queries_failed"] == 1 and result.counts["missing"] == 0
        assert any("paging loop" in e for _, _, e in result.failures), result.failures
        assert world.changes("missing") == []  # (page 1's real updates may be recorded)
        assert world.store.query_members("all") == members
    finally:
        world.close()


def test_a_first_load_that_loops_is_not_recorded_as_loaded(tmp_path):
    world = SimWorld(tmp_path, size=40, trials=[], ctgov={"page_size": 5}, queries=[{"name": "all", "status": ALL}])
    try:
        world.server.set_faults([{"match": STUDIES, "kind": "paging_loop"}])
        result = world.refresh(sources=["ctgov"])
        assert result.counts["queries_failed"] == 1 and result.counts["missing"] == 0
        assert not (world.store.query_watch("all") or {}).get("loaded_at")
        world.server.clear_faults()
        assert world.refresh(sources=["ctgov"]).counts["queries_loaded"] == 1
    finally:
        world.close()


@pytest.mark.parametrize("per_request", [1, 50])
def test_an_answer_about_another_study_is_a_parse_error_not_a_deletion(tmp_path, per_request):
    """``filter.ids=A`` answered with study C (not asked for): A fails, C is not recorded."""
    world = SimWorld(tmp_path, size=16, ctgov={"ids_per_request": per_request})
    try:
        watched = world.nct[:-3]
        world.configure(trials=watched, ctgov={"ids_per_request": per_request})
        assert world.refresh(sources=["ctgov"]).counts["new"] == len(watched)
        target = watched[0]
        world.server.set_faults([{"match": STUDIES, "kind": "wrong_trial", "trial": target}])
        result = world.refresh(sources=["ctgov"])
        failed = {t for t, _, _ in result.failures}
        assert target in failed and result.counts["missing"] == 0
        assert failed == ({target} if per_request == 1 else set(watched))  # the whole answer is suspect
        assert all("not asked for" in e for _, _, e in result.failures), result.failures
        assert world.changes() == []
        assert {r["trial_id"] for r in world.store.trials("ctgov")} == set(watched)  # the stranger is not stored
    finally:
        world.close()


def test_an_answer_about_another_watched_study_does_not_rewrite_it(tmp_path):
    """A's batch answered with B's study: A fails; B (asked in its own batch) is unchanged."""
    world = SimWorld(tmp_path, size=16, ctgov={"ids_per_request": 1})
    try:
        world.refresh(sources=["ctgov"])
        a, b = world.nct[0], world.nct[1]
        world.server.set_faults([{"match": STUDIES, "kind": "wrong_trial", "trial": a, "other": b}])
        result = world.refresh(sources=["ctgov"])
        assert [(t, s) for t, s, _ in result.failures] == [(a, "ctgov")]
        assert result.counts["missing"] == 0 and world.changes() == []
        assert world.trial(a, "ctgov")["state"] == "present"
    finally:
        world.close()


def test_a_history_version_about_another_study_is_not_backfilled(tmp_path):
    """The backfill's /history/{v} answered with another study: an error, nothing stored."""
    import httpx

    from pipeline.backfill import backfill_trial
    from pipeline.http_client import RegistryClient
    from pipeline.sources import SOURCES

    world = SimWorld(tmp_path, size=16)
    try:
        trial = next(t.trial_id for t in world.corpus.nct_trials if len(world.corpus.history_changes(t.trial_id)) >= 2)
        world.server.set_faults([{"match": "/api/int/studies/", "kind": "wrong_trial", "trial": trial}])
        with httpx.Client() as http:
            outcome = backfill_trial(world.store, RegistryClient(world.config.sources["ctgov"], http), SOURCES["ctgov"], trial)
        assert outcome.error and "another trial" in outcome.error
        assert world.store.snapshots_of(trial) == [] and world.changes() == []
        assert {r["trial_id"] for r in world.store.trials("ctgov")} <= {trial}
    finally:
        world.close()
