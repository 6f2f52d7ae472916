"""The repository lock: one exporter at a time, across every worker process and thread of a
replica (an ``flock`` on a file in its data directory) and across replicas (the store's
``ExportLease``: a PostgreSQL advisory lock when replicas share a database)."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from server.store import ExportLease

_POLL = 0.005
# Asking the database for the lease costs a round trip: less often than the local flock.
_LEASE_POLL = 0.02


class RepoLock:
    """The kernel drops the flock and the database drops the lease when the holder dies, so a
    killed worker or replica never leaves the repository locked."""

    def __init__(self, path: Path, lease: ExportLease) -> None:
        self.path = path
        self.lease = lease

    @contextmanager
    def held(self, deadline: float) -> Iterator[bool]:
        """Hold the lock, polling until ``deadline`` (``time.monotonic()``); yield whether it
        was acquired."""
        # A fresh open file description per holder, so threads of one worker exclude each
        # other exactly like separate processes do.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if not _wait(lambda: _try_flock(fd), deadline, _POLL):
                yield False
                return
            # Only the flock holder touches the lease: one per replica asks the database.
            if not _wait(self.lease.try_acquire, deadline, _LEASE_POLL):
                yield False
                return
            try:
                yield True
            finally:
                self.lease.release()
        finally:
            os.close(fd)

    def still_held(self) -> bool:
        """Whether the lease survived until now (asked before each push)."""
        return self.lease.still_held()


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _wait(attempt: Callable[[], bool], deadline: float, pause: float) -> bool:
    while not attempt():
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
    return True
