"""The store: the source of truth for releases. Callers open it with ``open_store`` and use
the ``Store`` interface; this is the one place that picks the backend (SQLite in the data
directory by default, PostgreSQL with ``KUBERPULT_DATABASE_URL``)."""

from __future__ import annotations

from typing import Protocol

from server.config import Config
from server.store.base import Store
from server.store.base import utc_now
from server.store.sqlite import SqliteStore
from server.store.wakeup import wake_all

__all__ = ["ExportLease", "Store", "export_lease", "open_store", "utc_now"]


def open_store(config: Config, *, pooled: bool = True) -> Store:
    """A connection to the configured database. ``pooled=False`` opens one of its own, for a
    command that runs once (the gunicorn master must not keep a pool across its fork)."""
    if config.database_url:
        from server.store.postgres import PostgresStore

        return PostgresStore(config, pooled=pooled)
    if pooled:
        return SqliteStore.for_this_thread(config.database_path, config.sqlite_busy_timeout_ms)
    return SqliteStore(config.database_path, config.sqlite_busy_timeout_ms)


def wake_waiters(config: Config) -> None:
    """Wake the requests that wait for an export (the repository lock just became free).
    PostgreSQL's waiters hear of finished exports by NOTIFY and look again on their own."""
    if not config.database_url:
        wake_all(config.data_dir)


class ExportLease(Protocol):
    """Who may export, across replicas; taken after the replica's own repository flock."""

    def try_acquire(self) -> bool: ...

    def still_held(self) -> bool: ...

    def release(self) -> None: ...


class ReplicaLease:
    """One replica (SQLite): the repository flock already decides, so this always agrees."""

    def try_acquire(self) -> bool:
        return True

    def still_held(self) -> bool:
        return True

    def release(self) -> None:
        return None


def export_lease(config: Config) -> ExportLease:
    """The lease for the configured database (a PostgreSQL advisory lock when shared)."""
    if config.database_url:
        from server.store.postgres import PostgresLease

        return PostgresLease.for_config(config)
    return ReplicaLease()
