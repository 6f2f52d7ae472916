"""Waking waiting releases across worker processes on SQLite (FIFOs, see server/store/wakeup.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from server.store.wakeup import ExportWakeup
from server.store.wakeup import wake_all

ROOT = Path(__file__).resolve().parent.parent


def listener(data_dir: Path) -> ExportWakeup:
    wakeup = ExportWakeup.for_data_dir(data_dir)
    assert wakeup is not None
    return wakeup


def test_a_waiter_wakes_when_an_export_ends(tmp_path: Path) -> None:
    wakeup = listener(tmp_path)
    seen = wakeup.generation
    threading.Timer(0.2, wake_all, [tmp_path]).start()
    started = time.monotonic()
    wakeup.wait(seen, 10)
    assert time.monotonic() - started < 5
    assert wakeup.generation != seen


def test_without_a_wakeup_the_waiter_waits_its_timeout(tmp_path: Path) -> None:
    wakeup = listener(tmp_path)
    seen = wakeup.generation
    wake_all(tmp_path / "another-server")
    started = time.monotonic()
    wakeup.wait(seen, 0.5)
    assert time.monotonic() - started >= 0.45
    assert wakeup.generation == seen


def test_another_process_is_woken(tmp_path: Path) -> None:
    waiter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path\n"
            "from server.store.wakeup import ExportWakeup\n"
            "w = ExportWakeup.for_data_dir(Path(sys.argv[1]))\n"
            "seen = w.generation\n"
            "print('ready', flush=True)\n"
            "started = time.monotonic(); w.wait(seen, 30)\n"
            "print(round(time.monotonic() - started, 1), flush=True)\n",
            str(tmp_path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert waiter.stdout is not None
    with waiter.stdout:
        assert waiter.stdout.readline().strip() == "ready"
        wake_all(tmp_path)
        waited = float(waiter.stdout.readline())
    assert waiter.wait(timeout=30) == 0
    assert waited < 5


def test_the_fifo_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    (tmp_path / "waiters").mkdir()
    ended = subprocess.Popen(["true"])
    ended.wait()
    dead = tmp_path / "waiters" / f"{ended.pid}.fifo"
    os.mkfifo(dead, 0o600)  # nobody reads it: its process is gone
    not_a_fifo = tmp_path / "waiters" / "1.fifo"
    not_a_fifo.write_text("")
    wake_all(tmp_path)
    assert not dead.exists()
    assert not_a_fifo.read_text() == ""


def test_a_waiter_whose_process_ends_during_the_wakeup_breaks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reader goes away between our open and our write: EPIPE, which must not turn the
    # export that sends it (after its commit) into a 500, nor stop the other wake-ups.
    (tmp_path / "waiters").mkdir()
    dying = tmp_path / "waiters" / "1.fifo"
    os.mkfifo(dying, 0o600)
    reader = os.open(dying, os.O_RDONLY | os.O_NONBLOCK)
    survivor = listener(tmp_path)
    seen = survivor.generation
    real_fstat = os.fstat

    def reader_exits(fd: int) -> os.stat_result:
        nonlocal reader
        if reader >= 0:
            os.close(reader)
            reader = -1
        return real_fstat(fd)

    monkeypatch.setattr(os, "fstat", reader_exits)
    wake_all(tmp_path)  # must not raise
    monkeypatch.undo()
    survivor.wait(seen, 10)
    assert survivor.generation != seen


def test_only_the_fifo_of_a_process_that_is_gone_is_removed(tmp_path: Path) -> None:
    waiters = tmp_path / "waiters"
    waiters.mkdir()
    # No reader, but its process lives: it may be a worker putting its new FIFO in place.
    starting = waiters / f"{os.getpid()}.fifo"
    os.mkfifo(starting, 0o600)
    not_a_pid = waiters / "kuberpult.fifo"
    os.mkfifo(not_a_pid, 0o600)
    wake_all(tmp_path)
    assert starting.exists()
    assert not_a_pid.exists()


def test_without_a_waiters_directory_releases_still_wait_and_see(tmp_path: Path) -> None:
    from server.store.sqlite import SqliteStore

    (tmp_path / "waiters").write_text("not a directory")
    assert ExportWakeup.for_data_dir(tmp_path) is None
    store = SqliteStore(tmp_path / "db.sqlite3")
    store.migrate()
    seen = store.export_generation()
    started = time.monotonic()
    store.wait_for_export(seen, 0.2)  # a plain wait: the caller looks again
    assert time.monotonic() - started >= 0.15
    store.close()
