"""Issue 9 item 1: a deletion is believed only after N answered runs in a row without the trial.

Over real sockets against the simulator: outages (503s, resets, blocked pages) are no
answer, so they neither count towards a deletion nor reset the count; a run that finds
the trial resets it; a trial once withheld by the guard is not believed early in a
later, quieter run.  Both registries, watchlists and query sweeps.
"""

from __future__ import annotations

import pytest

from pipeline.plan import MASS_MISSING_CONFIRM, judge_vanished
from pipeline.plan import TrialState, Update
from pipeline.store import SCHEMA_VERSION

from sim_world import STUDIES, WHO_PAGE, SimWorld

assert MASS_MISSING_CONFIRM == 3  # the sequences below are written for three


@pytest.fixture
def world(tmp_path):
    w = SimWorld(tmp_path)
    try:
        yield w
    finally:
        w.close()


def route(source):
    return WHO_PAGE if source == "who" else STUDIES


def expected_ids(world, source):
    return world.ids if source == "who" else world.nct


def run(world, source, fault):
    """One refresh of ``source`` with ``fault`` (a kind, or None for a healthy registry)."""
    if fault is None:
        world.server.clear_faults()
    else:
        world.server.set_faults([{"match": route(source), "kind": fault}])
    return world.refresh(sources=[source])


@pytest.mark.parametrize("source,outage", [("who", "503"), ("ctgov", "503"), ("who", "bot_check"), ("ctgov", "reset")])
def test_an_outage_then_one_bad_run_records_no_deletion(world, source, outage):
    """The issue's reproduction: two failed runs, then one run of not-found pages."""
    assert run(world, source, None).counts["failed"] == 0
    for _ in range(2):
        failed = run(world, source, outage)
        assert failed.counts["failed"] == len(expected_ids(world, source)) and failed.counts["missing"] == 0
    bad = run(world, source, "not_found")
    assert bad.counts["missing"] == 0, "two failed runs were taken as two runs without the trials"
    assert {t for t, _, _ in bad.failures} == set(expected_ids(world, source))
    assert all("suspected registry fault" in e for _, _, e in bad.failures)
    assert world.changes() == []
    recovered = run(world, source, None)
    assert recovered.counts["failed"] == 0 and recovered.counts["reappeared"] == 0
    assert world.changes() == []
    assert all(r["state"] == "present" and r["vanish_streak"] == 0 for r in world.store.trials(source))
    world.check()


@pytest.mark.parametrize("source", ["who", "ctgov"])
def test_failed_runs_neither_count_nor_reset_the_vanish_streak(world, source):
    run(world, source, None)
    sequence = ["not_found", "503", "not_found", "503", "503"]
    for fault in sequence:
        assert run(world, source, fault).counts["missing"] == 0, fault
    assert world.changes() == []
    assert {r["vanish_streak"] for r in world.store.trials(source)} == {2}
    third = run(world, source, "not_found")  # the third answered run without them: believed, once each
    assert third.counts["missing"] == len(expected_ids(world, source))
    assert sorted(c["trial_id"] for c in world.changes("missing")) == sorted(expected_ids(world, source))
    assert run(world, source, "not_found").counts["missing"] == len(expected_ids(world, source))
    assert len(world.changes("missing")) == len(expected_ids(world, source))  # not one per run
    world.check()


@pytest.mark.parametrize("source", ["who", "ctgov"])
def test_a_run_that_finds_the_trials_resets_the_streak(world, source):
    run(world, source, None)
    for fault in ["not_found", "not_found", None, "not_found", "not_found"]:
        result = run(world, source, fault)
        assert result.counts["missing"] == 0 and result.counts["reappeared"] == 0, fault
    assert world.changes() == []
    world.check()


def test_a_trial_withheld_once_is_not_believed_early_in_a_quiet_run(world):
    """After a mass vanish, the same trials vanishing among few are still counted, not believed at once."""
    run(world, "who", None)
    run(world, "who", "not_found")
    few = world.ids[:2]
    world.server.set_faults([{"match": WHO_PAGE, "kind": "not_found", "trial": t} for t in few])
    quiet = world.refresh(sources=["who"])
    assert quiet.counts["missing"] == 0
    assert {t for t, _, _ in quiet.failures} == set(few)
    assert [world.trial(t, "who")["vanish_streak"] for t in few] == [2, 2]
    assert {world.trial(t, "who")["vanish_streak"] for t in world.ids[2:]} == {0}  # found again: reset
    believed = world.refresh(sources=["who"])
    assert believed.counts["missing"] == 2
    assert sorted(c["trial_id"] for c in world.changes("missing")) == sorted(few)


def test_a_query_sweep_after_an_outage_records_no_deletion(tmp_path):
    """The mirror's sweep confirmations go through the same per-trial streak."""
    statuses = ["RECRUITING", "NOT_YET_RECRUITING", "ACTIVE_NOT_RECRUITING", "COMPLETED", "TERMINATED",
                "WITHDRAWN", "SUSPENDED", "ENROLLING_BY_INVITATION", "UNKNOWN"]
    w = SimWorld(tmp_path, size=40, trials=[], ctgov={"page_size": 10, "ids_per_request": 50},
                 queries=[{"name": "all", "status": statuses}])
    try:
        first = w.refresh(sources=["ctgov"], full_sweep=True)
        members = w.store.query_members("all")
        assert first.counts["failed"] == 0 and len(members) >= 10
        for _ in range(2):  # the registry is down for two runs
            w.server.set_faults([{"match": "", "kind": "503"}])
            assert w.refresh(sources=["ctgov"], full_sweep=True).counts["missing"] == 0
        # then its search and its filter.ids answers lose every study for one run
        w.server.set_faults([{"match": STUDIES, "kind": "not_found"}])
        bad = w.refresh(sources=["ctgov"], full_sweep=True)
        assert bad.counts["missing"] == 0
        assert w.changes("missing") == []
        assert w.store.query_members("all") == members
        w.server.clear_faults()
        assert w.refresh(sources=["ctgov"], full_sweep=True).counts["failed"] == 0
        assert w.changes() == []
    finally:
        w.close()


def test_judge_vanished_counts_answered_runs_not_failures():
    def vanished(n):
        return [Update(f"NCT0000000{i}", "who", "missing", changes=[{"kind": "missing"}]) for i in range(n)]

    def states(n, *, fail_streak=0, vanish_streak=0):
        return {f"NCT0000000{i}": TrialState(f"NCT0000000{i}", "who", "present", 1, "h", fail_streak,
                                             vanish_streak=vanish_streak) for i in range(n)}

    outcomes = lambda updates: [u.outcome for u in updates]  # noqa: E731
    # two failed runs before are no evidence of a deletion
    assert outcomes(judge_vanished(vanished(5), 5, states(5, fail_streak=2))) == ["failed"] * 5
    withheld = judge_vanished(vanished(5), 5, states(5, fail_streak=2))
    assert all(u.suspected_vanish for u in withheld)
    assert outcomes(judge_vanished(vanished(5), 5, states(5, vanish_streak=1))) == ["failed"] * 5
    assert outcomes(judge_vanished(vanished(5), 5, states(5, vanish_streak=2))) == ["missing"] * 5
    # a few trials gone: at once, unless they were already suspected
    assert outcomes(judge_vanished(vanished(2), 20, states(2))) == ["missing"] * 2
    assert outcomes(judge_vanished(vanished(2), 20, states(2, vanish_streak=1))) == ["failed"] * 2
    assert outcomes(judge_vanished(vanished(2), 20, states(2, vanish_streak=2))) == ["missing"] * 2
    # two fresh vanishes while another trial of the source is under suspicion: withheld too
    suspect = TrialState("NCT00000099", "who", "present", 1, "h", 1, vanish_streak=1)
    assert outcomes(judge_vanished(vanished(2), 20, {**states(2), "NCT00000099": suspect})) == ["failed"] * 2


def test_few_vanishes_while_the_registry_is_under_suspicion_are_withheld(world):
    """Run 1 denies half the trials (withheld); run 2 errs on those and denies two others:
    a budget-cut or partial run must not slip a deletion past the guard."""
    run(world, "who", None)
    first, second = world.ids[:6], world.ids[6:8]
    world.server.set_faults([{"match": WHO_PAGE, "kind": "not_found", "trial": t} for t in first])
    assert world.refresh(sources=["who"]).counts["missing"] == 0
    world.server.set_faults([{"match": WHO_PAGE, "kind": "503", "trial": t} for t in first]
                            + [{"match": WHO_PAGE, "kind": "not_found", "trial": t} for t in second])
    result = world.refresh(sources=["who"])
    assert result.counts["missing"] == 0 and world.changes() == []
    assert [world.trial(t, "who")["vanish_streak"] for t in first + second] == [1] * 6 + [1] * 2
    world.server.clear_faults()
    healed = world.refresh(sources=["who"])
    assert healed.counts["failed"] == 0 and world.changes() == []
    assert {r["vanish_streak"] for r in world.store.trials("who")} == {0}


def test_an_older_database_gains_the_new_trials_columns(tmp_path):
    """A version 2 database gains the columns by migration step 3; opening again changes nothing."""
    import sqlite3

    from pipeline.store import SCHEMA_VERSION, Store

    path = tmp_path / "old.db"
    store = Store(path)
    store.conn.execute("INSERT INTO trials (trial_id, source, state, fail_streak) VALUES ('NCT00000001', 'who', 'present', 2)")
    for column in ("vanish_streak", "checked_run"):
        store.conn.execute(f"ALTER TABLE trials DROP COLUMN {column}")
    store.conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")  # as trialwatch 2 left it
    store.close()
    for _ in range(2):
        Store(path).close()
    conn = sqlite3.connect(path)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(trials)")]
    assert columns[-2:] == ["vanish_streak", "checked_run"]
    assert conn.execute("SELECT fail_streak, vanish_streak, checked_run FROM trials").fetchall() == [(2, 0, None)]
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    conn.close()
