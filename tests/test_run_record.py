"""A run's row: finished when the work ends, failed or interrupted on an exception, never
``finished`` after one; left ``running`` only when the store itself cannot be written."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import StoreError
from pipeline.run_record import recorded_run
from pipeline.store import Store


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "tw.db") as s:
        yield s


def last_run(store: Store) -> dict:
    return store.runs(limit=1)[0]


def test_a_run_that_ends_is_finished_with_its_counts_and_note(store):
    with recorded_run(store, ["ctgov"], "cli", note="hello") as run:
        run.counts = {"fetched": 3, "new": 2}
    row = last_run(store)
    assert (row["status"], row["fetched"], row["new"], row["note"]) == ("finished", 3, 2, "hello")
    assert row["finished_at"]


def test_a_run_the_work_cut_short_is_interrupted(store):
    with recorded_run(store, ["ctgov"], "cli") as run:
        run.interrupted = True
    assert last_run(store)["status"] == "interrupted"


def test_an_exception_fails_the_run_and_still_flushes(store):
    flushed = []
    with pytest.raises(RuntimeError):
        with recorded_run(store, ["who"], "import") as run:
            run.before_finish = lambda: flushed.append(True)
            run.counts = {"fetched": 1}
            raise RuntimeError("boom")
    row = last_run(store)
    assert (row["status"], row["fetched"]) == ("failed", 1) and flushed == [True]


def test_ctrl_c_marks_the_run_interrupted(store):
    with pytest.raises(KeyboardInterrupt):
        with recorded_run(store, ["ctgov"], "cli"):
            raise KeyboardInterrupt
    assert last_run(store)["status"] == "interrupted"


def test_a_store_error_leaves_the_run_for_the_next_refresh_to_close(store):
    with pytest.raises(StoreError):
        with recorded_run(store, ["ctgov"], "cli") as run:
            run.before_finish = lambda: pytest.fail("the store is not written again after a StoreError")
            raise StoreError("database is locked")
    assert last_run(store)["status"] == "running"
    assert store.close_stale_runs() == 1


def test_a_backfill_that_fails_records_its_run_as_failed(tmp_path, monkeypatch):
    import pipeline.backfill

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the backfill")

    monkeypatch.setattr(pipeline.backfill, "backfill_trial", broken)
    cfg = tmp_path / "config.toml"
    cfg.write_text('[database]\npath = "tw.db"\n[sources.ctgov]\nbase_url = "http://127.0.0.1:9"\n')
    result = CliRunner().invoke(cli, ["--config", str(cfg), "backfill", "NCT04252118"])
    assert result.exit_code != 0 and isinstance(result.exception, RuntimeError)
    with Store(tmp_path / "tw.db") as store:
        row = last_run(store)
    assert (row["trigger"], row["status"]) == ("backfill", "failed")


def test_a_refresh_that_raises_is_never_recorded_as_finished(tmp_path, monkeypatch):
    from pipeline.config import load_config
    from pipeline.refresh import refresh
    from pipeline.sources import SOURCES

    def broken(client, trial_ids, *, should_stop):
        raise RuntimeError("a bug in a source")

    monkeypatch.setattr(SOURCES["who"], "fetch", broken)
    cfg = tmp_path / "config.toml"
    cfg.write_text('[database]\npath = "tw.db"\n[sources.ctgov]\nenabled = false\n'
                   '[watch]\ntrials = ["ISRCTN83971151"]\n')
    config = load_config(cfg)
    with Store(config.database_path) as store:
        with pytest.raises(RuntimeError):
            refresh(config, store)
        assert last_run(store)["status"] == "failed"
