"""The SQLite store's WAL stays small: cut back after each checkpoint, emptied on close,
so a store on a small volume gets going again once its full disk has room."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from store_queries import check_exactly_once
from test_reliability import POOLS, TWO_BOTS, events

from salesbot_core import Engine, StoreError
from salesbot_plugins.sqlite_store import WAL_SIZE_LIMIT

MiB = 1024 * 1024


@pytest.fixture
def two_bots(write_rules: Callable[..., Path]) -> Path:
    return write_rules(**{"bots.yaml": TWO_BOTS})


def wal_size(db: Path) -> int | None:
    """The size of the store's ``-wal`` file, None when there is none."""
    wal = db.with_name(db.name + "-wal")
    return wal.stat().st_size if wal.exists() else None


def test_the_wal_is_cut_back_to_its_limit_once_copied_into_the_database(
    two_bots: Path, tmp_path: Path
) -> None:
    db = tmp_path / "s.db"
    with Engine(two_bots, db) as engine:
        batch = iter(events(400))
        # A reader's snapshot holds off checkpoints until the WAL passes its limit: left to
        # itself, a WAL of 1,000 pages and the event that crossed them may stay just under.
        reader = sqlite3.connect(db)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM records").fetchone()
        for event in batch:
            engine.handle(event)
            if (wal_size(db) or 0) > WAL_SIZE_LIMIT:
                break
        reader.close()
        largest = wal_size(db) or 0
        for event in batch:  # some 9,000 WAL pages in all: several checkpoints
            engine.handle(event)
            largest = max(largest, wal_size(db) or 0)
        checkpoint = sqlite3.connect(db)  # a checkpoint as any other connection may run it
        assert checkpoint.execute("PRAGMA wal_checkpoint").fetchone()[0] == 0  # not busy
        checkpoint.close()
        engine.handle(events(401)[-1])  # the next write starts the WAL over and cuts it back
        assert wal_size(db) == WAL_SIZE_LIMIT
    # one checkpoint's worth of pages and the event that crossed it, never 16 MiB
    assert WAL_SIZE_LIMIT < largest < WAL_SIZE_LIMIT + MiB
    assert wal_size(db) is None  # the last connection closed: no WAL left


def test_closing_the_store_empties_the_wal_while_another_connection_is_open(
    two_bots: Path, tmp_path: Path
) -> None:
    db = tmp_path / "s.db"
    engine = Engine(two_bots, db)
    reader = sqlite3.connect(db)  # another process's connection, idle between its reads
    try:
        for event in events(100):
            engine.handle(event)
        assert reader.execute("SELECT COUNT(*) FROM outcomes").fetchone() == (100,)
        assert wal_size(db) > MiB  # type: ignore[operator]
        engine.close()
        assert wal_size(db) == 0
    finally:
        reader.close()
    assert wal_size(db) is None


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB filesystem of its own (tmpfs), so the disk really fills up."""
    mount = tmp_path / "volume"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        reason = done.stderr.strip() or f"mount exited with {done.returncode}"
        if os.environ.get("CI"):
            pytest.fail(f"CI must be able to mount a tmpfs: {reason}")
        pytest.skip(f"needs to mount a 16 MiB tmpfs (root, CAP_SYS_ADMIN): {reason}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_store_on_a_16_mib_volume_takes_every_event_once_its_full_disk_has_room(
    two_bots: Path, small_volume: Path
) -> None:
    db = small_volume / "s.db"
    ballast = small_volume / "ballast"
    ballast.write_bytes(b"\0" * 12 * MiB)  # other files fill the volume but 4 MiB
    handled = 0
    with pytest.raises(StoreError) as full, Engine(two_bots, db) as engine:
        for event in events(1_000):
            engine.handle(event)
            handled += 1
    assert str(full.value).endswith(
        "database or disk is full (free disk space, then run again: nothing of the failed event was written)"
    )
    assert 0 < handled < 1_000
    ballast.unlink()  # disk space freed: the run goes on, each event once
    with Engine(two_bots, db) as engine:
        for event in events(1_000):
            engine.handle(event)
    check_exactly_once(str(db), 1_000, POOLS)
    assert wal_size(db) is None
