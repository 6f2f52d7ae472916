"""The repository lock: one exporter at a time, across every worker process and thread of a
replica (an ``flock`` on a file in its data directory) and across replicas (the store's
``ExportLease``: a PostgreSQL advisory lock when replicas share a database)."""

from __future__ import annotations

import fcntl
import os
import threading
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
    killed worker or replica never leaves the repository locked. ``on_release`` runs after
    every release by a holder (whichever thread it was handed to)."""

    def __init__(
        self, path: Path, lease: ExportLease, on_release: Callable[[], None] = lambda: None
    ) -> None:
        self.path = path
        self.lease = lease
        self.on_release = on_release

    @contextmanager
    def held(self, deadline: float) -> Iterator[Holding]:
        """Hold the lock, polling until ``deadline`` (``time.monotonic()``); yield a
        ``Holding`` that is true when it was acquired. The lock ends with the block unless
        the holder hands it over (see ``Holding.hand_over``)."""
        # A fresh open file description per holder, so threads of one worker exclude each
        # other exactly like separate processes do.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        holding = Holding(acquired=False)
        try:
            if not _wait(lambda: _try_flock(fd), deadline, _POLL):
                yield holding
                return
            # Only the flock holder touches the lease: one per replica asks the database.
            if not _wait(self.lease.try_acquire, deadline, _LEASE_POLL):
                yield holding
                return
            holding = Holding(acquired=True, release=lambda: self._release(fd))
            yield holding
        finally:
            if holding.acquired:
                holding.end_block()
            else:
                os.close(fd)

    def _release(self, fd: int) -> None:
        try:
            self.lease.release()
        finally:
            os.close(fd)  # drops the flock
        self.on_release()

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


@contextmanager
def held_if_free(path: Path) -> Iterator[bool]:
    """An ``flock`` on ``path`` if nobody holds it now (no waiting); yield whether it was."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        yield _try_flock(fd)
    finally:
        os.close(fd)


class Holding:
    """One holder's hold on the repository lock.

    A push that outlives its request keeps the lock until it has finished: the request hands
    the lock over to the thread that completes the push, which then releases it.
    """

    def __init__(self, *, acquired: bool, release: Callable[[], None] | None = None) -> None:
        self.acquired = acquired
        self._release = release
        self._handed_over = False
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return self.acquired

    def hand_over(self) -> Callable[[], None]:
        """Keep the lock past the ``with`` block; return what releases it (once)."""
        self._handed_over = True
        return self._release_once

    def end_block(self) -> None:
        """The ``with`` block ended: release, unless the lock was handed over."""
        if not self._handed_over:
            self._release_once()

    def _release_once(self) -> None:
        with self._lock:
            release, self._release = self._release, None
        if release is not None:
            release()
