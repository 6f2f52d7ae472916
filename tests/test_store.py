"""The SQLite backend's own behaviour: migrations from old files, durable transactions, WAL,
concurrent first opens (real files). The interface both backends share: test_store_backends."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

from server.store import schema
from server.store.sqlite import SqliteStore


def test_a_version_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    store = SqliteStore(path)
    with store.transaction():
        for statement in schema.MIGRATIONS[0].sqlite:
            store.db.conn.execute(statement)
        store.db.conn.execute("PRAGMA user_version=1")
    store.db.conn.execute(
        "insert into applications (name, team, created_at) values ('app', 't', 'now')"
    )
    store.close()
    upgraded = SqliteStore(path)
    upgraded.migrate()
    assert upgraded.db.conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    assert {"environments", "repository_views"} <= set(upgraded.db.table_names())
    assert upgraded.applications() == [{"name": "app", "team": "t", "latest_version": None}]
    upgraded.migrate()  # again: nothing to do, nothing breaks
    upgraded.close()


def test_the_database_is_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite3")
    assert store.db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with store.transaction(durable=False):
        assert store.db.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert store.db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    store.close()


def _open_and_migrate(path: str) -> int:
    store = SqliteStore(Path(path))
    store.migrate()
    version = int(store.db.conn.execute("PRAGMA user_version").fetchone()[0])
    store.close()
    return version


def test_many_processes_opening_a_new_database_at_once(tmp_path: Path) -> None:
    for attempt in range(5):
        path = str(tmp_path / f"race-{attempt}.sqlite3")
        with multiprocessing.get_context("spawn").Pool(6) as pool:
            assert pool.map(_open_and_migrate, [path] * 6) == [schema.SCHEMA_VERSION] * 6
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_each_thread_keeps_one_connection(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "db.sqlite3"
    first = SqliteStore.for_this_thread(path)
    first.migrate()
    first.close()  # kept open for the thread's next request
    again = SqliteStore.for_this_thread(path)
    assert again is first
    assert again.count_pending() == 0
    others: list[SqliteStore] = []
    thread = threading.Thread(target=lambda: others.append(SqliteStore.for_this_thread(path)))
    thread.start()
    thread.join()
    assert others[0] is not first


def test_a_kept_connection_left_in_a_transaction_is_rolled_back_first(tmp_path: Path) -> None:
    # A failed ROLLBACK (SQLite can end a transaction on its own) must not leave the thread's
    # kept connection inside a transaction for the rest of its life.
    path = tmp_path / "db.sqlite3"
    store = SqliteStore.for_this_thread(path)
    store.migrate()
    store.db.conn.execute("BEGIN IMMEDIATE")
    store.db.conn.execute(
        "insert into applications (name, team, created_at) values ('ghost', null, 'now')"
    )
    with store.transaction():  # would fail: "cannot start a transaction within a transaction"
        store.save_application("app", "team")
    assert [a["name"] for a in store.applications()] == ["app"]
