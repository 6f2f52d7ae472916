"""Waking the releases that wait for an export, across the worker processes of one server.

PostgreSQL tells every worker with LISTEN/NOTIFY; SQLite has nothing like it, and polling the
database from every waiting request costs CPU and answers late. So each worker process keeps a
FIFO of its own in ``<data dir>/waiters/`` and one thread blocked reading it; whoever commits the
end of an export writes a byte into every FIFO there. A FIFO whose process died has no reader
any more (opening it to write fails with ENXIO) and is removed by the next writer.

Waiters still look again after a short timeout, so a lost wake-up only costs that timeout.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from pathlib import Path

log = logging.getLogger(__name__)

_DIRECTORY = "waiters"
_registry: dict[tuple[int, Path], ExportWakeup] = {}
_registry_lock = threading.Lock()


class ExportWakeup:
    """This process's end: ``generation`` moves on every wake-up; ``wait`` blocks until it
    does (or the timeout passes)."""

    def __init__(self, directory: Path) -> None:
        self.generation = 0
        self._changed = threading.Condition()
        directory.mkdir(mode=0o700, exist_ok=True)
        path = directory / f"{os.getpid()}.fifo"
        path.unlink(missing_ok=True)
        os.mkfifo(path, 0o600)
        # Read and write: the FIFO always has a writer (us), so reads block instead of
        # seeing end-of-file, and senders find a reader as long as this process lives.
        self._fd = os.open(path, os.O_RDWR)
        threading.Thread(target=self._listen, name="kuberpult-wakeup", daemon=True).start()

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> ExportWakeup:
        """This process's listener for the server whose data directory is ``data_dir``."""
        key = (os.getpid(), data_dir)
        with _registry_lock:
            if key not in _registry:
                _registry[key] = cls(data_dir / _DIRECTORY)
            return _registry[key]

    def wait(self, seen: int, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self.generation != seen, timeout)

    def _listen(self) -> None:
        while True:
            try:
                os.read(self._fd, 4096)
            except OSError as error:
                log.warning("export wake-ups stopped: %s", error)
                return
            with self._changed:
                self.generation += 1
                self._changed.notify_all()


def wake_all(data_dir: Path) -> None:
    """Wake every waiting release of every worker process (after an export committed)."""
    directory = data_dir / _DIRECTORY
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return
    for entry in entries:
        if not entry.name.endswith(".fifo"):
            continue
        try:
            fd = os.open(entry.path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError as error:
            if error.errno == errno.ENXIO:  # its process is gone
                Path(entry.path).unlink(missing_ok=True)
            continue
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                os.write(fd, b"\n")
        except BlockingIOError:
            pass  # full of wake-ups it has not read yet: it will wake anyway
        finally:
            os.close(fd)
