"""Waking waiting releases across worker processes on SQLite (FIFOs, see server/store/wakeup.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from server.store.wakeup import ExportWakeup
from server.store.wakeup import wake_all

ROOT = Path(__file__).resolve().parent.parent


def test_a_waiter_wakes_when_an_export_ends(tmp_path: Path) -> None:
    wakeup = ExportWakeup.for_data_dir(tmp_path)
    seen = wakeup.generation
    threading.Timer(0.2, wake_all, [tmp_path]).start()
    started = time.monotonic()
    wakeup.wait(seen, 10)
    assert time.monotonic() - started < 5
    assert wakeup.generation != seen


def test_without_a_wakeup_the_waiter_waits_its_timeout(tmp_path: Path) -> None:
    wakeup = ExportWakeup.for_data_dir(tmp_path)
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
    dead = tmp_path / "waiters" / "999999999.fifo"
    os.mkfifo(dead, 0o600)  # nobody reads it: its process is gone
    not_a_fifo = tmp_path / "waiters" / "1.fifo"
    not_a_fifo.write_text("")
    wake_all(tmp_path)
    assert not dead.exists()
    assert not_a_fifo.read_text() == ""
