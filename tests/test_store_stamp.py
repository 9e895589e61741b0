"""The "verified" stamp (pipeline.store.verified): a database trialwatch checked and then
wrote itself is not checked again, and any other write, however quick, brings the full
check back.  Real SQLite files; the damage is done by plain file writes, as a broken
copy or a stray tool would."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from pathlib import Path

import pytest

from pipeline.errors import StoreError
from pipeline.store import Store
from pipeline.store.verified import MAX_AGE, stamp_path

from test_store_health import _update, assert_one_line_error, files, fill, trialwatch, write_config


def first_write_check(db: Path) -> str:
    """Open the store, write a run row, and say how the file was vouched for."""
    with Store(db) as store:
        store.start_run(["ctgov"], "test")
        return store.verified_by


def scramble_leaf(db: Path, table: str, seed: int = 7) -> None:
    conn = sqlite3.connect(db)
    leaves = [n for (n,) in conn.execute(
        "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno", (table,))]
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with open(db, "r+b") as f:
        f.seek((leaves[len(leaves) // 2] - 1) * page_size)
        f.write(random.Random(seed).randbytes(page_size))


def test_a_file_trialwatch_left_is_vouched_for_by_its_stamp(tmp_path):
    db = tmp_path / "t.db"
    fill(db, 50)
    assert stamp_path(str(db)).exists()
    assert first_write_check(db) == "stamp"
    assert first_write_check(db) == "stamp"  # each store that wrote leaves it good for the next


def test_any_other_write_brings_the_full_check_back_even_with_the_same_bytes(tmp_path):
    db = tmp_path / "t.db"
    fill(db, 50)
    data = db.read_bytes()
    with open(db, "r+b") as f:  # rewritten in place, byte for byte: only the change time moves
        f.write(data[:4096])
    assert first_write_check(db) == "quick_check"
    assert first_write_check(db) == "stamp"


@pytest.mark.parametrize("table", ["snapshots", "changes", "trials"])
def test_damage_done_the_moment_trialwatch_closed_the_file_is_caught(tmp_path, table):
    """The stamp records times from a coarse clock: a write in the same tick must still show."""
    for attempt in range(8):
        db = tmp_path / f"t{attempt}.db"
        fill(db, 60, rounds=2)
        scramble_leaf(db, table, seed=attempt)  # right away, within the tick of the last write
        before = files(db)
        with pytest.raises(StoreError, match="is corrupt"):
            first_write_check(db)
        assert files(db) == before


def test_the_cli_refuses_a_stamped_file_damaged_since(tmp_path):
    config = write_config(tmp_path)
    db = tmp_path / "t.db"
    fill(db, 300, rounds=2)
    assert stamp_path(str(db)).exists()
    scramble_leaf(db, "snapshots")
    before = files(db)
    for command in (("refresh", "--no-progress"), ("report", "--since", "last")):
        assert_one_line_error(trialwatch(config, *command), "is corrupt")
        assert files(db) == before, command


def test_a_write_by_another_program_while_open_leaves_no_stamp(tmp_path):
    db = tmp_path / "t.db"
    fill(db, 20)
    with Store(db) as store:
        store.start_run(["ctgov"], "test")
        other = sqlite3.connect(db)
        other.execute("INSERT INTO meta (key, value) VALUES ('written_by', 'another program')")
        other.commit()
        other.close()
        store.start_run(["ctgov"], "test")
    assert not stamp_path(str(db)).exists()
    assert first_write_check(db) == "quick_check"


def test_bytes_rewritten_in_the_file_while_it_is_open_leave_no_stamp(tmp_path):
    """Not through SQLite, the same bytes even, between two of the store's transactions."""
    db = tmp_path / "t.db"
    fill(db, 20)
    for between_writes in (True, False):
        with Store(db) as store:
            store.start_run(["ctgov"], "test")
            with open(db, "r+b") as f:
                f.seek(4096)
                page = f.read(4096)
                f.seek(4096)
                f.write(page)
            if between_writes:
                store.start_run(["ctgov"], "test")
        assert not stamp_path(str(db)).exists()
        assert first_write_check(db) == "quick_check"


def test_a_stamp_for_another_file_or_a_day_old_one_is_not_trusted(tmp_path):
    db, other = tmp_path / "t.db", tmp_path / "u.db"
    fill(db, 20)
    fill(other, 20)
    stamp = stamp_path(str(db))
    stamp.write_text(stamp_path(str(other)).read_text())  # the other file's stamp
    assert first_write_check(db) == "quick_check"
    data = json.loads(stamp.read_text())
    data["at"] = time.time() - MAX_AGE - 60  # its last full check, over a day ago
    stamp.write_text(json.dumps(data))
    assert first_write_check(db) == "quick_check"
    assert first_write_check(db) == "stamp"
    stamp.write_text("{not json")
    assert first_write_check(db) == "quick_check"


def test_a_copy_over_the_file_is_checked(tmp_path):
    db, spare = tmp_path / "t.db", tmp_path / "spare.db"
    fill(db, 20)
    fill(spare, 20)
    os.replace(spare, db)  # another file (inode, database id) at the path
    assert first_write_check(db) == "quick_check"


def test_a_store_that_only_read_leaves_the_stamp_alone(tmp_path):
    db = tmp_path / "t.db"
    fill(db, 20)
    stamp = stamp_path(str(db))
    before = stamp.read_text()
    with Store(db) as store:
        store.trials()
    assert stamp.read_text() == before
    assert first_write_check(db) == "stamp"


def test_a_write_that_fails_keeps_nothing_and_the_next_store_still_trusts_the_file(tmp_path):
    db = tmp_path / "t.db"
    fill(db, 20)
    with Store(db) as store:
        with pytest.raises(RuntimeError):
            store._write(lambda: (_ for _ in ()).throw(RuntimeError("boom")))
        store.save_update(_update("NCT99999999", "late"), None)
    assert first_write_check(db) == "stamp"
