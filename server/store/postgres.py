"""The PostgreSQL backend: one database shared by several replicas of the server.

- Writes: one writer at a time across every replica, as with SQLite, by a transaction-level
  advisory lock taken first in every write transaction (no unique-violation retry storms when
  replicas assign versions at once; the lock ends with the transaction, even if the replica dies).
- Export: ``PostgresLease`` is a session advisory lock on a connection of its own, so exactly one
  replica exports at a time; server-side keepalives and ``client_connection_check_interval`` free
  it within seconds when its holder vanishes.
- Waiters: the exporter sends ``NOTIFY`` in the transaction that records a push; each worker has
  one listening connection that wakes its waiting requests (``ExportNotifier``).

Connections are per worker process (a pool created after gunicorn forks), never shared across a
fork. The password comes from the URL or ``KUBERPULT_DATABASE_PASSWORD_FILE`` and is never logged.

Over 250 lines: the store, its connection pool, the export lease and the notifier are one backend:
they share the connection settings and the lock keys.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any
from typing import TypeVar

import psycopg
from psycopg_pool import ConnectionPool
from psycopg_pool import PoolTimeout

from server.config import Config
from server.config import redact
from server.errors import Unavailable
from server.store import schema
from server.store.base import Cursor
from server.store.base import Store

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Advisory lock keys (one bigint namespace per database): "kl" and a purpose.
WRITE_LOCK = 0x6B6C_0001
EXPORT_LOCK = 0x6B6C_0002
MIGRATE_LOCK = 0x6B6C_0003
CHANNEL = "kuberpult_lite_export"
_APPLICATION_NAME = "kuberpult-lite"
# How long a request waits for a pooled connection before answering 503.
POOL_TIMEOUT = 5.0
# Server side: notice a client that vanished (no FIN, no RST) within about 10 s, and a dead
# client of a running statement within a second. Client side: the same for a dead server.
_SERVER_OPTIONS = (
    "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3 "
    "-c tcp_user_timeout=10000 -c client_connection_check_interval=1000"
)


def connection_kwargs(config: Config, purpose: str) -> dict[str, Any]:
    """libpq parameters besides the URL: the password file, keepalives, a name in pg_stat."""
    kwargs: dict[str, Any] = {
        "autocommit": True,
        "connect_timeout": 5,
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": 10000,
        "options": _SERVER_OPTIONS,
        # pg_stat_activity shows which replica holds the export lock (/readyz reads it).
        "application_name": f"{_APPLICATION_NAME} {purpose} {config.replica_name}"[:63],
    }
    if config.database_password_file is not None:
        kwargs["password"] = config.database_password_file.read_text().strip()
    return kwargs


def _unavailable(error: Exception) -> Unavailable:
    # psycopg's messages hold host and port, never the password; redact() is for URLs in them.
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return Unavailable(f"the database is unavailable, try again: {redact(first)}", retry_after=2)


@functools.lru_cache(maxsize=256)
def _dialect(sql: str) -> str:
    """The shared SQL's ``?`` placeholders as psycopg's ``%s``."""
    return sql.replace("?", "%s")


_singletons: dict[tuple[object, int, str], Any] = {}
_singletons_lock = threading.Lock()


def _per_process(kind: Callable[[Config], _T], config: Config) -> _T:
    """One ``kind`` per worker process and database: nothing crosses gunicorn's fork."""
    key = (kind, os.getpid(), config.database_url)
    with _singletons_lock:
        if key not in _singletons:
            _singletons[key] = kind(config)
        found: _T = _singletons[key]
        return found


def _new_pool(config: Config) -> ConnectionPool[psycopg.Connection[Any]]:
    return ConnectionPool(
        config.database_url,
        kwargs=connection_kwargs(config, "worker"),
        min_size=1,
        max_size=config.database_max_connections,
        open=True,
        # A restarted server leaves broken connections in the pool: check on borrow.
        check=ConnectionPool.check_connection,
        timeout=POOL_TIMEOUT,
        name="kuberpult-lite",
    )


def _pool(config: Config) -> ConnectionPool[psycopg.Connection[Any]]:
    """This process's pool (a pool must not cross gunicorn's fork)."""
    return _per_process(_new_pool, config)


class PostgresStore(Store):
    """One connection, borrowed from this process's pool (or opened directly when
    ``pooled=False``, for one-off commands in the gunicorn master)."""

    JOIN_TEXT = "string_agg({}, ', ')"
    # Notifications wake waiters; the poll is only the fallback.
    WAITER_MAX_POLL = 0.25

    def __init__(self, config: Config, *, pooled: bool = True) -> None:
        self.config = config
        self._pool = _pool(config) if pooled else None
        try:
            if self._pool is not None:
                try:
                    self.conn = self._pool.getconn(timeout=POOL_TIMEOUT)
                    return
                except PoolTimeout:
                    # After an outage the pool waits longer and longer between reconnect
                    # attempts (1, 2, 4 ... s); the database may be back before the next one,
                    # and every pooled connection may be busy. One connection of its own
                    # serves this request meanwhile.
                    self._pool = None
            self.conn = psycopg.connect(config.database_url, **connection_kwargs(config, "command"))
        except psycopg.Error as error:
            raise _unavailable(error) from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.putconn(self.conn)
        else:
            self.conn.close()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        try:
            cursor: Cursor = self.conn.execute(_dialect(sql), params or None)
        except psycopg.OperationalError as error:
            raise _unavailable(error) from None
        return cursor

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            with self.conn.cursor() as cursor:
                cursor.executemany(_dialect(sql), rows)
        except psycopg.OperationalError as error:
            raise _unavailable(error) from None

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[None]:
        try:
            with self.conn.transaction():
                # One writer at a time across replicas, like SQLite's BEGIN IMMEDIATE.
                self.conn.execute("select pg_advisory_xact_lock(%s)", [WRITE_LOCK])
                if not durable:
                    self.conn.execute("set local synchronous_commit = off")
                yield
        except psycopg.OperationalError as error:
            raise _unavailable(error) from None

    def migrate(self) -> None:
        try:
            with self.conn.transaction():
                # Replicas starting together take turns; DDL is transactional, so a replica
                # killed half way leaves nothing behind.
                self.conn.execute("select pg_advisory_xact_lock(%s)", [MIGRATE_LOCK])
                self.conn.execute(
                    "create table if not exists schema_version (version integer not null)"
                )
                row = self.conn.execute("select version from schema_version").fetchone()
                current = 0 if row is None else int(row[0])
                for step in schema.pending(current):
                    for statement in step.postgres:
                        self.conn.execute(statement)
                if row is None:
                    self.conn.execute(
                        "insert into schema_version values (%s)", [schema.SCHEMA_VERSION]
                    )
                elif current < schema.SCHEMA_VERSION:
                    self.conn.execute(
                        "update schema_version set version = %s", [schema.SCHEMA_VERSION]
                    )
        except psycopg.OperationalError as error:
            raise _unavailable(error) from None

    def schema_version(self) -> int:
        """The version the database is at (0 before the first migration)."""
        row = self._execute(
            "select version from schema_version where exists "
            "(select 1 from pg_tables where tablename = 'schema_version')"
        ).fetchone()
        return 0 if row is None else int(row[0])

    def _notify_export(self) -> None:
        self._execute("select pg_notify(?, '')", [CHANNEL])

    def export_generation(self) -> int:
        return ExportNotifier.for_config(self.config).generation

    def wait_for_export(self, seen: int, timeout: float) -> None:
        ExportNotifier.for_config(self.config).wait(seen, timeout)

    def exporting_replica(self) -> str | None:
        """The replica holding the export lock right now, if any."""
        row = self._execute(
            "select a.application_name from pg_locks l join pg_stat_activity a on a.pid = l.pid "
            "where l.locktype = 'advisory' and l.granted and l.classid = 0 and l.objid = ? "
            "and l.database = (select oid from pg_database where datname = current_database())",
            [EXPORT_LOCK],
        ).fetchone()
        if row is None:
            return None
        return str(row[0]).removeprefix(f"{_APPLICATION_NAME} lease ")


class ExportNotifier:
    """One LISTEN connection per worker process; ``generation`` counts notifications (and
    reconnects, after which every waiter must look again: nothing is queued for absent
    listeners)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.generation = 0
        self._changed = threading.Condition()
        threading.Thread(target=self._listen, name="kuberpult-listen", daemon=True).start()

    @classmethod
    def for_config(cls, config: Config) -> ExportNotifier:
        return _per_process(cls, config)

    def wait(self, seen: int, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self.generation != seen, timeout)

    def _bump(self) -> None:
        with self._changed:
            self.generation += 1
            self._changed.notify_all()

    def _listen(self) -> None:
        while True:
            try:
                with psycopg.connect(
                    self.config.database_url, **connection_kwargs(self.config, "listen")
                ) as conn:
                    conn.execute(f"listen {CHANNEL}")
                    self._bump()
                    while True:
                        for _ in conn.notifies(timeout=5.0):
                            self._bump()
            except psycopg.Error as error:
                log.warning("database notifications interrupted: %s", _unavailable(error).message)
                self._bump()
                time.sleep(1.0)


class PostgresLease:
    """The export lock across replicas: a session advisory lock on a connection of its own.

    Only the holder of the replica's repository flock calls it, so one per process suffices.
    Losing the connection loses the lock; ``still_held`` asks before each push.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._conn: psycopg.Connection[Any] | None = None
        self._held = False

    @classmethod
    def for_config(cls, config: Config) -> PostgresLease:
        return _per_process(cls, config)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.config.database_url, **connection_kwargs(self.config, "lease")
            )
        return self._conn

    def _drop(self) -> None:
        """Close the connection: the server frees whatever it held."""
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._held = False

    def try_acquire(self) -> bool:
        try:
            row = (
                self._connection()
                .execute("select pg_try_advisory_lock(%s)", [EXPORT_LOCK])
                .fetchone()
            )
        except psycopg.Error as error:
            log.warning("cannot take the export lock: %s", _unavailable(error).message)
            self._drop()
            return False
        self._held = bool(row and row[0])
        return self._held

    def still_held(self) -> bool:
        if not self._held or self._conn is None:
            return False
        try:
            self._conn.execute("select 1")
        except psycopg.Error:
            self._drop()
            return False
        return True

    def release(self) -> None:
        if not self._held or self._conn is None:
            return
        try:
            self._conn.execute("select pg_advisory_unlock(%s)", [EXPORT_LOCK])
            self._held = False
        except psycopg.Error:
            self._drop()
