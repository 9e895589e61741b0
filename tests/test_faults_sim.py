"""Every registry fault, injected by the simulator over real sockets, and what trialwatch records.

Each test takes a baseline (every trial stored once), makes the simulator misbehave
(``server.set_faults``: the same rules as ``POST /_sim/faults``), refreshes, and checks
the contract: a fault is an error for the operator (the run's failures, the trial's
``last_error`` and ``fail_streak``, the fetch log), never a change in the trial; what
the registry really says (a deletion, a comeback) is recorded once.
"""

from __future__ import annotations

import sqlite3
import time
from email.utils import formatdate

import httpx
import pytest

from pipeline.config import load_config
from pipeline.refresh import refresh
from pipeline.simulator import Corpus, SimulatorServer
from pipeline.simulator.faults import SCRIPT_TITLE
from pipeline.store import Store

from dbcheck import check_invariants

STUDIES = "/api/v2/studies"
WHO_PAGE = "/Trial2.aspx"


def write_config(folder, server, trials, *, ctgov="", who="", database='path = "faults.db"'):
    """A config on the simulator: high rate limit, short timeouts, plus extra source keys.

    ``ctgov`` / ``who`` are TOML lines overriding the defaults below.
    """
    def table(defaults, extra):
        values = dict(defaults)
        for line in extra.splitlines():
            if line.strip():
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
        return "\n".join(f"{k} = {v}" for k, v in values.items())

    common = {"requests_per_second": "1000", "timeout": "2", "retries": "2"}
    text = (
        f'[database]\n{database}\n\n'
        f'[sources.ctgov]\nbase_url = "{server.ctgov_url}"\n{table(common, ctgov)}\n\n'
        f'[sources.who]\nbase_url = "{server.who_url}"\n{table({**common, "concurrency": "4"}, who)}\n\n'
        f'[watch]\ntrials = [{", ".join(repr(t) for t in trials)}]\n'
    )
    path = folder / "config.toml"
    path.write_text(text)
    return load_config(path)


class World:
    def __init__(self, tmp_path, size=12):
        self.tmp_path = tmp_path
        self.corpus = Corpus(size=size, seed=1)
        self.server = SimulatorServer(self.corpus).start()
        self.ids = self.corpus.ids
        self.nct = [t for t in self.ids if t.startswith("NCT")]
        self.who_only = [t for t in self.ids if not t.startswith("NCT")]
        self.store = None
        self.configure()

    def configure(self, *, ctgov="", who=""):
        if self.store is not None:
            self.store.close()
        self.config = write_config(self.tmp_path, self.server, self.ids, ctgov=ctgov, who=who)
        self.store = Store(self.config.database_path)

    def refresh(self, **kw):
        kw.setdefault("backoff_base", 0.01)
        return refresh(self.config, self.store, **kw)

    def baseline(self):
        result = self.refresh()
        assert result.counts["failed"] == 0 and result.counts["new"] == len(self.nct) * 2 + len(self.who_only)
        return result

    def fetch_log(self, run_id):
        return [dict(r) for r in self.store.db.query(
            "SELECT source, trial_id, url, status, attempts, elapsed_ms, error FROM fetch_log WHERE run_id = ? ORDER BY id",
            [run_id])]

    def trial(self, trial_id, source):
        (row,) = [r for r in self.store.trials(source) if r["trial_id"] == trial_id]
        return row

    def counts(self):
        return check_invariants(self.config.database_path)

    def close(self):
        if self.store is not None:
            self.store.close()
        self.server.stop()


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    try:
        yield w
    finally:
        w.close()


def assert_no_change(world, before):
    after = world.counts()
    assert (after["snapshots"], after["changes"]) == (before["snapshots"], before["changes"])
    assert world.store.changes(include_details=True) == []


# -- 429 and Retry-After -------------------------------------------------------------------------


def test_429_retry_after_seconds_and_http_date_are_waited_for(world):
    world.baseline()
    before = world.counts()
    target = world.who_only[0]
    # through the control API over the socket, as an operator would (POST /_sim/faults)
    posted = httpx.post(world.server.base_url + "/_sim/faults", json=[
        {"match": STUDIES, "kind": "429", "count": 1, "retry_after": 1},
        {"match": WHO_PAGE, "kind": "429", "count": 1, "retry_after": 2, "retry_after_date": True, "trial": target},
    ])
    assert posted.status_code == 200, posted.text
    result = world.refresh()
    assert result.counts["failed"] == 0 and result.exit_code == 0
    log = world.fetch_log(result.run_id)
    (ctgov,) = [r for r in log if r["source"] == "ctgov"]
    assert ctgov["status"] == 200 and ctgov["attempts"] == 2 and ctgov["error"] is None
    assert ctgov["elapsed_ms"] >= 900  # waited the second the registry asked for
    (page,) = [r for r in log if r["trial_id"] == target]
    assert page["status"] == 200 and page["attempts"] == 2
    assert page["elapsed_ms"] >= 900  # an HTTP-date two seconds ahead (one-second resolution)
    assert_no_change(world, before)


def test_a_retry_after_past_the_cap_ends_the_attempt_at_once(world):
    world.configure(ctgov="max_retry_wait = 2", who="max_retry_wait = 2\n")
    world.baseline()
    before = world.counts()
    world.server.set_faults([
        {"match": STUDIES, "kind": "429", "retry_after": 3600},
        {"match": WHO_PAGE, "kind": "429", "retry_after": 3600, "retry_after_date": True, "trial": world.who_only[0]},
    ])
    started = time.monotonic()
    result = world.refresh()
    assert time.monotonic() - started < 10  # never waited the hour
    assert {(t, s) for t, s, _ in result.failures} == {(t, "ctgov") for t in world.nct} | {(world.who_only[0], "who")}
    log = world.fetch_log(result.run_id)
    capped = [r for r in log if r["status"] == 429]
    assert capped and all(r["attempts"] == 1 and "HTTP 429" in r["error"] for r in capped)
    assert_no_change(world, before)
    row = world.trial(world.nct[0], "ctgov")
    assert row["state"] == "present" and row["fail_streak"] == 1 and "429" in row["last_error"]
    assert httpx.delete(world.server.base_url + "/_sim/faults").status_code == 200
    again = world.refresh()
    assert again.counts["failed"] == 0 and world.trial(world.nct[0], "ctgov")["fail_streak"] == 0
    assert_no_change(world, before)


def test_a_run_over_its_budget_defers_the_rest_and_the_next_run_finishes(world):
    # Every WHO page takes ~0.3 s; a budget of 1 s covers a few of the 12.
    world.configure(who="run_budget = 1\nconcurrency = 1\n")
    world.server.set_faults([{"match": WHO_PAGE, "kind": "timeout", "delay": 0.3}])
    first = world.refresh()
    deferred = first.by_source["who"]["deferred"]
    assert 0 < deferred < len(world.ids)
    assert first.counts["failed"] == 0 and first.exit_code == 0
    assert "deferred to next run" in first.summary()
    assert first.by_source["ctgov"]["new"] == len(world.nct)
    seen = {r["trial_id"] for r in world.store.trials("who") if r["state"] == "present"}
    assert len(seen) == len(world.ids) - deferred
    # the next run starts with what was deferred, so the work completes even when
    # every run is cut short
    second = world.refresh()
    seen = {r["trial_id"] for r in world.store.trials("who") if r["state"] == "present"}
    assert second.by_source["who"]["new"] == min(deferred, len(world.ids) - second.by_source["who"]["deferred"])
    runs = 2
    while len(seen) < len(world.ids):
        world.refresh()
        runs += 1
        seen = {r["trial_id"] for r in world.store.trials("who") if r["state"] == "present"}
        assert runs < 8, "deferred trials never completed"
    assert world.store.changes() == []
    world.counts()


# -- transient faults: retried, then errors ----------------------------------------------------


@pytest.mark.parametrize(
    "rule,needle",
    [
        ({"kind": "503"}, "HTTP 503"),
        ({"kind": "500"}, "HTTP 500"),
        ({"kind": "502"}, "HTTP 502"),
        ({"kind": "reset"}, "network error"),
        ({"kind": "truncate"}, "network error"),  # Content-Length promises more than arrives
        ({"kind": "timeout", "delay": 5}, "timeout"),
        ({"kind": "slow_drip", "interval": 0.2, "chunk": 64}, "too slow"),
    ],
    ids=lambda v: v["kind"] if isinstance(v, dict) else None,
)
def test_transient_faults_are_retried_then_logged_as_errors(world, rule, needle):
    world.configure(ctgov="timeout = 0.4\nretries = 2", who="timeout = 0.4\n")
    world.baseline()
    before = world.counts()
    target = world.who_only[0]
    world.server.set_faults([{**rule, "match": STUDIES}, {**rule, "match": WHO_PAGE, "trial": target}])
    result = world.refresh()
    assert result.exit_code == 1
    assert {(t, s) for t, s, _ in result.failures} == {(t, "ctgov") for t in world.nct} | {(target, "who")}
    log = world.fetch_log(result.run_id)
    errors = [r for r in log if r["error"]]
    assert {r["source"] for r in errors} == {"ctgov", "who"}
    for r in errors:
        assert r["attempts"] == 3, r  # 1 + retries
        assert needle in r["error"], r
    assert_no_change(world, before)
    row = world.trial(target, "who")
    assert row["state"] == "present" and row["fail_streak"] == 1 and needle in row["last_error"]


def test_a_short_5xx_burst_is_ridden_out(world):
    world.baseline()
    before = world.counts()
    world.server.set_faults([{"match": STUDIES, "kind": "503", "count": 2},
                             {"match": WHO_PAGE, "kind": "reset", "count": 2}])
    result = world.refresh()
    assert result.counts["failed"] == 0
    log = world.fetch_log(result.run_id)
    assert max(r["attempts"] for r in log if r["source"] == "ctgov") == 3
    assert all(r["error"] is None for r in log)
    assert_no_change(world, before)


# -- bad documents: errors, never changes -------------------------------------------------------


@pytest.mark.parametrize(
    "kind,params,needle",
    [
        ("truncate", {"mode": "cut"}, "invalid JSON"),
        ("invalid_json", {}, "invalid JSON"),
        ("html_instead_of_json", {}, "HTML"),
        ("empty_200", {}, "empty body"),
        ("deep_json", {}, "invalid JSON"),
        ("layout_change", {}, "layout changed"),
        ("huge", {"size": 50 * 1024 * 1024}, "cap"),
        ("huge", {"size": 50 * 1024 * 1024, "content_length": True}, "cap"),
        ("control_chars", {}, "invalid JSON"),  # raw control bytes are not JSON
        ("redirect_loop", {}, "too many redirects"),  # was an httpx exception that ended the run
    ],
)
def test_bad_ctgov_documents_are_errors_not_changes(world, kind, params, needle):
    world.configure(ctgov="max_response_mb = 2")
    world.baseline()
    before = world.counts()
    world.server.set_faults([{"match": STUDIES, "kind": kind, **params}])
    result = world.refresh()
    assert result.counts["missing"] == 0, "a bad document must never read as deleted trials"
    assert {(t, s) for t, s, _ in result.failures} == {(t, "ctgov") for t in world.nct}
    assert all(needle in e for _, _, e in result.failures), result.failures[0]
    assert_no_change(world, before)
    row = world.trial(world.nct[0], "ctgov")
    assert row["state"] == "present" and row["fail_streak"] == 1 and needle in row["last_error"]


@pytest.mark.parametrize(
    "kind,params,error",
    [
        ("bot_check", {}, "BlockedPageError"),
        ("access_denied", {}, "BlockedPageError"),
        ("error_page", {}, "BlockedPageError"),
        ("empty_200", {}, "empty body"),
        ("layout_change", {}, "ParseError"),
        ("truncate", {"mode": "cut"}, "ParseError"),  # half a page: sections missing
        ("html_instead_of_json", {}, "ParseError"),    # the CT.gov JavaScript shell on the WHO route
        ("huge", {"size": 50 * 1024 * 1024}, "cap"),
        ("500", {}, "HTTP 500"),                       # the portal's ASP.NET error page, with a 500
        ("redirect_loop", {}, "too many redirects"),
    ],
)
def test_bad_who_pages_are_errors_not_changes(world, kind, params, error):
    world.configure(who="max_response_mb = 2\n")
    world.baseline()
    before = world.counts()
    targets = [world.nct[0], world.who_only[0]]
    world.server.set_faults([{"match": WHO_PAGE, "kind": kind, "trial": t, **params} for t in targets])
    result = world.refresh()
    assert {(t, s) for t, s, _ in result.failures} == {(t, "who") for t in targets}
    assert all(error in e for _, _, e in result.failures), result.failures
    assert result.counts["missing"] == 0
    assert_no_change(world, before)
    for t in targets:
        row = world.trial(t, "who")
        assert row["state"] == "present" and row["fail_streak"] == 1 and error in row["last_error"]
    world.server.clear_faults()
    again = world.refresh()
    assert again.counts["failed"] == 0 and world.trial(targets[0], "who")["fail_streak"] == 0
    assert_no_change(world, before)


# -- what the registry really says: missing, and back -----------------------------------------


def test_not_found_page_is_missing_and_a_comeback_is_one_change(world):
    world.baseline()
    world.corpus.advance(days=1)  # the scripted day: among others, nct[3] is deleted
    gone = world.nct[3]
    second = world.refresh()
    assert second.counts["missing"] == 2
    missing = [c for c in world.store.changes() if c["kind"] == "missing"]
    assert {(c["trial_id"], c["source"]) for c in missing} == {(gone, "ctgov"), (gone, "who")}
    assert world.trial(gone, "who")["state"] == "missing"
    # still missing on the next run: no second 'missing' change
    world.refresh()
    assert len([c for c in world.store.changes() if c["kind"] == "missing"]) == 2
    world.server.restore(gone)
    before = len(world.store.changes(include_details=True))
    third = world.refresh()
    new_rows = world.store.changes(include_details=True)[before:]
    assert sorted((c["source"], c["kind"], c["field"]) for c in new_rows) == [
        ("ctgov", "reappeared", "_record"), ("who", "reappeared", "_record")]
    assert third.counts["reappeared"] == 2 and third.counts["failed"] == 0
    assert world.trial(gone, "who")["state"] == "present"
    world.counts()


def test_a_blocked_page_while_missing_does_not_bring_the_trial_back(world):
    world.baseline()
    world.corpus.advance(days=1)
    gone = world.nct[3]
    world.refresh()
    world.server.set_faults([{"match": WHO_PAGE, "kind": "bot_check", "trial": gone}])
    result = world.refresh()
    assert (gone, "who") in {(t, s) for t, s, _ in result.failures}
    assert world.trial(gone, "who")["state"] == "missing"
    assert not [c for c in world.store.changes() if c["kind"] == "reappeared"]


# -- hostile content: stored verbatim, no injection ---------------------------------------------


def test_script_and_sql_in_titles_are_stored_verbatim(world):
    world.baseline()
    target = world.nct[0]
    world.server.set_faults([{"match": STUDIES, "kind": "script_title", "trial": target},
                             {"match": WHO_PAGE, "kind": "script_title", "trial": target}])
    result = world.refresh()
    assert result.counts["failed"] == 0
    for source in ("ctgov", "who"):
        record = world.store.load_state(target, source).record
        assert record["public_title"] == SCRIPT_TITLE, (source, record["public_title"])
        assert world.trial(target, source)["title"] == SCRIPT_TITLE
        (change,) = [c for c in world.store.changes(trial_id=target, source=source) if c["field"] == "public_title"]
        assert change["new"] == SCRIPT_TITLE
    # the SQL-looking text did nothing: every table is there and whole
    conn = sqlite3.connect(world.config.database_path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert {"trials", "snapshots", "changes", "runs", "fetch_log", "meta"} <= tables
    world.counts()


def test_control_characters_and_bad_utf8_in_a_who_page(world):
    world.baseline()
    target = world.who_only[0]
    world.server.set_faults([{"match": WHO_PAGE, "kind": "control_chars", "trial": target}])
    result = world.refresh()
    assert result.counts["failed"] == 0
    title = world.store.load_state(target, "who").record["public_title"]
    assert "Control" in title and "\ufffd" in title  # invalid UTF-8 became U+FFFD, no crash
    world.counts()


def test_escaped_control_characters_in_json_are_stored(world):
    world.baseline()
    target = world.nct[1]
    world.server.set_faults([{"match": STUDIES, "kind": "control_chars", "mode": "escaped", "trial": target}])
    result = world.refresh()
    assert result.counts["failed"] == 0
    title = world.store.load_state(target, "ctgov").record["public_title"]
    assert "Control" in title and "\x1b" in title  # verbatim in the store; output escapes it
    world.counts()


# -- a registry that denies everything: the mass-disappearance guard -----------------------------


@pytest.mark.parametrize("source,rule", [("who", {"match": WHO_PAGE, "kind": "not_found"}),
                                         ("ctgov", {"match": STUDIES, "kind": "not_found"})])
def test_a_registry_denying_every_trial_is_a_fault_not_a_mass_deletion(world, source, rule):
    world.baseline()
    before = world.counts()
    world.server.set_faults([rule])
    result = world.refresh()
    expected = world.ids if source == "who" else world.nct
    assert result.counts["missing"] == 0
    assert {(t, s) for t, s, _ in result.failures} == {(t, source) for t in expected}
    assert all("suspected registry fault" in e for _, _, e in result.failures)
    assert_no_change(world, before)
    assert all(r["state"] == "present" for r in world.store.trials(source))
    world.server.clear_faults()
    recovered = world.refresh()
    assert recovered.counts["failed"] == 0
    assert_no_change(world, before)


def test_a_mass_disappearance_that_persists_is_believed_on_the_third_run(world):
    world.baseline()
    world.server.set_faults([{"match": WHO_PAGE, "kind": "not_found"}])
    for _ in range(2):
        assert world.refresh().counts["missing"] == 0
    assert world.store.changes() == []
    third = world.refresh()
    assert third.counts["missing"] == len(world.ids)
    missing = [c for c in world.store.changes() if c["kind"] == "missing"]
    assert sorted(c["trial_id"] for c in missing) == sorted(world.ids)  # one each, not one per run
    world.counts()


def test_a_few_trials_not_found_are_missing_at_once(world):
    world.baseline()
    gone = world.nct[:2]
    world.server.set_faults([{"match": WHO_PAGE, "kind": "not_found", "trial": t} for t in gone]
                            + [{"match": STUDIES, "kind": "not_found", "trial": gone[0]}])
    result = world.refresh()
    assert result.counts["missing"] == 3 and result.counts["failed"] == 0
    assert sorted((c["trial_id"], c["source"]) for c in world.store.changes() if c["kind"] == "missing") == sorted(
        [(gone[0], "ctgov"), (gone[0], "who"), (gone[1], "who")])


def test_judge_vanished_thresholds():
    from pipeline.plan import judge_vanished
    from pipeline.plan import TrialState, Update

    def vanished(n):
        return [Update(f"NCT0000000{i}", "who", "missing", changes=[{"kind": "missing"}]) for i in range(n)]

    def states(n, streak=0):
        return {f"NCT0000000{i}": TrialState(f"NCT0000000{i}", "who", "present", 1, "h", 0, vanish_streak=streak)
                for i in range(n)}

    assert [u.outcome for u in judge_vanished(vanished(4), 4, states(4))] == ["missing"] * 4   # too few to judge
    assert [u.outcome for u in judge_vanished(vanished(5), 20, states(5))] == ["missing"] * 5  # a quarter: real
    assert [u.outcome for u in judge_vanished(vanished(5), 9, states(5))] == ["failed"] * 5    # over half: suspect
    assert [u.outcome for u in judge_vanished(vanished(5), 9, states(5, streak=2))] == ["missing"] * 5  # third run


def test_a_who_page_whose_fields_come_back_mostly_empty_is_a_parse_failure(world):
    """The ids still match but most fields are empty: a dozen 'deletions' would be false."""
    world.baseline()
    before = world.counts()
    targets = [world.nct[0], world.who_only[0]]
    world.server.set_faults([{"match": WHO_PAGE, "kind": "layout_change", "mode": "empty_fields", "trial": t}
                             for t in targets])
    result = world.refresh()
    assert {(t, s) for t, s, _ in result.failures} == {(t, "who") for t in targets}
    assert all("lost most of the fields" in e for _, _, e in result.failures), result.failures
    assert_no_change(world, before)
    # a field more kept: still far from the stored record
    world.server.set_faults([{"match": WHO_PAGE, "kind": "layout_change", "mode": "empty_fields", "trial": t,
                              "keep": ["TrialIDLabel", "Public_titleLabel", "Scientific_titleLabel",
                                       "Recruitment_statusLabel", "Date_registrationLabel"]} for t in targets])
    result = world.refresh()
    assert {(t, s) for t, s, _ in result.failures} == {(t, "who") for t in targets}
    assert all("lost most of the fields" in e for _, _, e in result.failures), result.failures
    assert_no_change(world, before)


def test_a_who_page_of_another_trial_is_an_error_not_a_rewrite(world):
    """A portal mix-up serving trial B's page for A must not rewrite A's record field by field."""
    world.baseline()
    before = world.counts()
    targets = [world.nct[0], world.who_only[0]]
    world.server.set_faults([{"match": WHO_PAGE, "kind": "wrong_trial", "trial": t} for t in targets])
    result = world.refresh()
    assert {(t, s) for t, s, _ in result.failures} == {(t, "who") for t in targets}
    assert all("another trial" in e for _, _, e in result.failures), result.failures
    assert_no_change(world, before)


@pytest.mark.parametrize("shown,requested,same", [
    ("NCT04252118", "NCT04252118", True), ("nct04252118", "NCT04252118", True),
    ("EUCTR2020-001113-21-FR", "EUCTR2020-001113-21", True),   # EU-CTR's country suffix
    ("CTRI/2020/04/024775", "CTRI/2020/04/024775", True), (None, "NCT04252118", True),
    ("NCT04252119", "NCT04252118", False), ("NTR1234", "NTR123", False), ("ChiCTR2100045397", "NCT04252118", False),
])
def test_same_trial(shown, requested, same):
    from pipeline.sources.who import same_trial

    assert same_trial(shown, requested) is same
