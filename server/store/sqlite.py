"""The SQLite backend, the embedded default: one file in the data directory.

Every write runs in ``BEGIN IMMEDIATE`` so a read-then-write (the idempotency check, the next
version number) cannot be interleaved by another worker. WAL mode lets readers go on while one
writer works; ``synchronous=FULL`` so an answered release survives a power cut.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from server.errors import Unavailable
from server.store import schema
from server.store.base import Cursor
from server.store.base import Store
from server.store.wakeup import ExportWakeup
from server.store.wakeup import wake_all

BUSY_TIMEOUT_MS = 5000
# Waiting for the write lock: the first pause and the longest (see _begin_immediate).
_FIRST_PAUSE = 0.0002
_LONGEST_PAUSE = 0.002
#: The page cache of a connection kept open for a thread, in KiB.
KEPT_CACHE_KIB = 512


class SqliteStore(Store):
    """One SQLite connection; never shared between threads. ``for_this_thread`` keeps one
    per thread open: opening (WAL check, pragmas) costs more than a request's queries."""

    # Waiters are woken when an export ends and when the lock is free again (wakeup.py);
    # looking again on their own is only the fallback.
    WAITER_FIRST_POLL = 0.05
    WAITER_MAX_POLL = 0.25

    def __init__(
        self, path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS, *, kept: bool = False
    ) -> None:
        conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None)
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._data_dir = path.parent
        self._writers = _writers(path)
        self._kept = kept
        self._wake_after_commit = False
        self.db = sqlite_utils.Database(conn)
        try:
            _use_wal(conn, busy_timeout_ms / 1000)
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            if kept:
                # Kept for the thread's life: a smaller page cache than SQLite's 2 MB.
                conn.execute(f"PRAGMA cache_size=-{KEPT_CACHE_KIB}")
        except sqlite3.OperationalError as error:
            conn.close()
            raise _unavailable(error) from error

    @classmethod
    def for_this_thread(cls, path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> SqliteStore:
        """This thread's connection to ``path``, opened on first use and kept open;
        ``close()`` leaves it open for the thread's next request."""
        stores: dict[tuple[int, Path, int], SqliteStore] = _threads.__dict__.setdefault(
            "stores", {}
        )
        key = (os.getpid(), path, busy_timeout_ms)
        if key not in stores:
            stores[key] = cls(path, busy_timeout_ms, kept=True)
        return stores[key]

    def close(self) -> None:
        if not self._kept:
            self.db.conn.close()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        try:
            cursor: Cursor = self.db.conn.execute(sql, params)
        except sqlite3.OperationalError as error:
            raise _unavailable(error) from error
        return cursor

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            self.db.conn.executemany(sql, rows)
        except sqlite3.OperationalError as error:
            raise _unavailable(error) from error

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[None]:
        conn = self.db.conn
        if not durable:
            conn.execute("PRAGMA synchronous=NORMAL")
        try:
            with self._immediate():
                yield
        finally:
            if not durable:
                conn.execute("PRAGMA synchronous=FULL")

    @contextmanager
    def _immediate(self) -> Iterator[None]:
        conn = self.db.conn
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        # The threads of one worker queue here, in turn and woken at once, so only one of
        # them at a time asks SQLite for the write lock (against the other workers).
        if not self._writers.acquire(timeout=self._busy_timeout_ms / 1000):
            raise Unavailable("the database is busy, try again: other writers", retry_after=2)
        wake = False
        try:
            if conn.in_transaction:
                # A kept connection whose last ROLLBACK failed: never build on that.
                _rollback(conn)
            self._begin_immediate(deadline)
            try:
                yield
            except BaseException:
                self._wake_after_commit = False
                _rollback(conn)
                raise
            wake, self._wake_after_commit = self._wake_after_commit, False
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as error:
                _rollback(conn)
                raise _unavailable(error) from error
        finally:
            self._writers.release()
        if wake:
            wake_all(self._data_dir)

    # Waiting releases are woken through FIFOs (see wakeup.py), once the export has committed.

    def _notify_export(self) -> None:
        self._wake_after_commit = True

    def export_generation(self) -> int:
        wakeup = ExportWakeup.for_data_dir(self._data_dir)
        return 0 if wakeup is None else wakeup.generation

    def wait_for_export(self, seen: int, timeout: float) -> None:
        wakeup = ExportWakeup.for_data_dir(self._data_dir)
        if wakeup is None:
            time.sleep(timeout)
        else:
            wakeup.wait(seen, timeout)

    def _begin_immediate(self, deadline: float) -> None:
        """``BEGIN IMMEDIATE``, waiting for the write lock up to the busy timeout.

        SQLite's own busy handler sleeps 1, 2, 5, 10 ... up to 100 ms between tries, so under
        many concurrent releases a writer often slept far longer than the transaction it waited
        for (a few milliseconds). This tries again after at most 2 ms instead.
        """
        conn = self.db.conn
        pause = _FIRST_PAUSE
        conn.execute("PRAGMA busy_timeout=0")
        try:
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as error:
                    if not _is_busy(error) or time.monotonic() >= deadline:
                        raise _unavailable(error) from error
                time.sleep(pause)
                pause = min(pause * 2, _LONGEST_PAUSE)
        finally:
            conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")

    def migrate(self) -> None:
        with self.transaction():
            current = int(self.db.conn.execute("PRAGMA user_version").fetchone()[0])
            for step in schema.pending(current):
                for statement in step.sqlite:
                    self.db.conn.execute(statement)
            if current < schema.SCHEMA_VERSION:
                self.db.conn.execute(f"PRAGMA user_version={schema.SCHEMA_VERSION}")


def _use_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch a new database to WAL (persistent). Switching needs a moment alone with the file,
    and SQLite answers "locked" at once instead of waiting when another connection (a second
    worker starting at the same time) is there too, so this retries until ``timeout``."""
    deadline = time.monotonic() + timeout
    while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


_threads = threading.local()
_writer_locks: dict[tuple[int, Path], threading.RLock] = {}
_writer_locks_lock = threading.Lock()


def _writers(path: Path) -> threading.RLock:
    """This process's writer lock for the database at ``path`` (reentrant, so a nested
    transaction still fails as SQLite says, instead of waiting for itself)."""
    key = (os.getpid(), path)
    with _writer_locks_lock:
        return _writer_locks.setdefault(key, threading.RLock())


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is open (SQLite rolls back by itself on some errors)."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # checked again before the next transaction


def _is_busy(error: sqlite3.OperationalError) -> bool:
    """Another connection holds the write lock (SQLITE_BUSY / SQLITE_LOCKED)."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(error) or "busy" in str(error)


def _unavailable(error: sqlite3.Error) -> Unavailable:
    return Unavailable(f"the database is busy, try again: {error}", retry_after=2)
