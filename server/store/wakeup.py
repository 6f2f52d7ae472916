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
    does (or the timeout passes).

    The FIFO is made under a temporary name and opened before it is renamed into place, so a
    FIFO under its final name has a reader for as long as its process lives. A sender that
    finds none (ENXIO) removes it once its process is gone.
    """

    def __init__(self, directory: Path) -> None:
        self.generation = 0
        self._changed = threading.Condition()
        directory.mkdir(mode=0o700, exist_ok=True)
        path = directory / f"{os.getpid()}.fifo"
        making = directory / f"{os.getpid()}.{threading.get_ident()}.new"
        making.unlink(missing_ok=True)
        os.mkfifo(making, 0o600)
        try:
            # Read and write: the FIFO always has a writer (us), so reads block instead of
            # seeing end-of-file, and senders find a reader as long as this process lives.
            self._fd = os.open(making, os.O_RDWR | os.O_NOFOLLOW)
            os.replace(making, path)
        except OSError:
            making.unlink(missing_ok=True)
            raise
        threading.Thread(target=self._listen, name="kuberpult-wakeup", daemon=True).start()

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> ExportWakeup | None:
        """This process's listener for the server whose data directory is ``data_dir``, or
        None when it cannot be made (waiters then look again on their own timeouts)."""
        key = (os.getpid(), data_dir)
        with _registry_lock:
            if key not in _registry:
                try:
                    _registry[key] = cls(data_dir / _DIRECTORY)
                except OSError as error:
                    log.warning("no export wake-ups, waiting releases poll: %s", error)
                    return None
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
    """Wake every waiting release of every worker process. Never raises: a wake-up that
    cannot be sent costs its waiters only their fallback timeout."""
    directory = data_dir / _DIRECTORY
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if entry.name.endswith(".fifo"):
            _wake(entry)


def _wake(entry: os.DirEntry[str]) -> None:
    try:
        fd = os.open(entry.path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as error:
        if error.errno == errno.ENXIO:  # nobody reads it: its process is gone
            _remove_if_dead(entry)
        return
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.write(fd, b"\n")
    except OSError:
        # Full of wake-ups it has not read yet (it will wake anyway), or its process ended
        # after we opened it (EPIPE).
        pass
    finally:
        os.close(fd)


def _remove_if_dead(entry: os.DirEntry[str]) -> None:
    """Remove the FIFO of a process that is gone. A FIFO without a reader whose pid is alive
    is left alone: a worker with that pid may be renaming its new FIFO into place."""
    try:
        pid = int(entry.name.removesuffix(".fifo"))
        os.kill(pid, 0)
    except ProcessLookupError:
        Path(entry.path).unlink(missing_ok=True)
    except (ValueError, OverflowError, OSError):
        pass  # not ours to judge (a name that is no pid, a process of another user)
