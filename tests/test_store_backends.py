"""The store interface on both backends: SQLite in a data directory and a real PostgreSQL
server. Whatever the release service, exporter and read API rely on must answer alike."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.config import Config
from server.errors import Unavailable
from server.models import ExportState
from server.models import FoundRelease
from server.models import StoredRelease
from server.store import Store
from server.store import open_store
from server.store import schema


@pytest.fixture(params=["sqlite", "postgres"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    env = {"KUBERPULT_DATA_DIR": str(tmp_path / "data")}
    if request.param == "postgres":
        env["KUBERPULT_DATABASE_URL"] = request.getfixturevalue("database_url")
    (tmp_path / "data").mkdir()
    return Config.from_env(env)


@pytest.fixture
def store(config: Config) -> Iterator[Store]:
    store = open_store(config)
    store.migrate()
    yield store
    store.close()


def release_fields(application: str, version: int, **extra: object) -> dict[str, object]:
    return {
        "application": application,
        "version": version,
        "author_name": "Ada",
        "author_email": "ada@example.com",
        "created_at": "2026-11-28T00:00:00Z",
        **extra,
    }


def add_release(store: Store, application: str, version: int, **extra: object) -> int:
    with store.transaction():
        store.save_application(application, "team-a")
        return store.insert_release(
            release_fields(application, version, **extra), {"production": b"a: 1\n", "dev": b"b"}
        )


def test_a_release_is_stored_with_its_manifests_and_found_again(store: Store) -> None:
    release_id = add_release(store, "pay", 1, source_message="fix: ; the bug", client_uuid="u-1")
    found = store.find_release("pay", 1)
    assert found is not None and found.id == release_id
    assert found.manifests == {"dev": b"b", "production": b"a: 1\n"}
    assert found.source_message == "fix: ; the bug"
    assert found.state == ExportState.PENDING
    assert store.find_by_client_uuid("pay", "u-1") == found
    assert store.release_by_id(release_id) == found
    assert store.find_release("pay", 2) is None
    assert store.find_by_client_uuid("other", "u-1") is None


def test_versions_and_teams(store: Store) -> None:
    assert store.highest_version("pay") is None
    add_release(store, "pay", 3)
    add_release(store, "pay", 7)
    assert store.highest_version("pay") == 7
    assert store.application_team("pay") == "team-a"
    with store.transaction():
        store.save_application("pay", None)  # no team given: the team stays
    assert store.application_team("pay") == "team-a"
    with store.transaction():
        store.save_application("pay", "team-b")
    assert store.application_team("pay") == "team-b"
    assert store.application_team("nobody") is None
    assert store.applications() == [{"name": "pay", "team": "team-b", "latest_version": 7}]
    assert store.release_keys() == {("pay", 3), ("pay", 7)}


def test_the_export_queue(store: Store) -> None:
    first, second, third = (add_release(store, "pay", v) for v in (1, 2, 3))
    assert [r.id for r in store.pending_releases(2)] == [first, second]
    assert store.count_pending() == 3
    store.mark_pushed([(first, "a" * 40)], status={"ok": True})
    store.mark_failed(second, "unsafe_repository_path", "a symlink")
    assert store.release_state(first) == ExportState.PUSHED
    assert store.release_by_id(first).commit_sha == "a" * 40
    failed = store.release_by_id(second)
    assert (failed.state, failed.error_code, failed.error) == (
        ExportState.FAILED,
        "unsafe_repository_path",
        "a symlink",
    )
    assert [r.id for r in store.pending_releases(10)] == [third]
    with store.transaction():
        store.retry_failed(second)
    assert store.count_pending() == 2
    assert store.view("export")[0] == {"ok": True}
    assert store.pushed_in_repository() == {("pay", 1)}
    store.mark_removed([("pay", 1)])
    assert store.pushed_in_repository() == set()
    store.delete_release(third)
    assert store.find_release("pay", 3) is None


def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.save_application("pay", "team-a")
        store.insert_release(release_fields("pay", 1), {"dev": b"x"})
        raise RuntimeError("the request was refused half way")
    assert store.find_release("pay", 1) is None
    assert store.applications() == []


def test_adopted_releases_count_as_pushed_once(store: Store) -> None:
    found = FoundRelease("pay", 4, {"dev": b"x"}, None, "team-a", {"display_version": "v4"})
    store.adopt([found], ("kuberpult", "k@example.com"))
    store.adopt([found], ("kuberpult", "k@example.com"))  # another replica saw it too
    adopted = store.find_release("pay", 4)
    assert adopted is not None and adopted.state == ExportState.PUSHED
    assert adopted.display_version == "v4"
    assert store.release_keys() == {("pay", 4)}


def test_views_environments_and_pages(store: Store) -> None:
    store.save_view("remote r1", {"ok": True})
    store.save_view("remote r1", {"ok": False, "error": "down"})
    assert store.view("remote r1")[0] == {"ok": False, "error": "down"}
    assert store.view("never") == ({}, None)
    store.save_environments({"dev": (True, None), "prod": (False, "prod-group")}, {"e": 1})
    assert store.environments() == {"dev": (True, "dev"), "prod": (False, "prod-group")}
    for version in range(1, 6):
        add_release(store, "pay", version)
    page, total = store.releases_page("pay", offset=1, limit=2)
    assert (total, [r.version for r in page]) == (5, [4, 3])
    latest = store.latest_releases(2)
    assert [(r["application"], r["version"]) for r in latest] == [("pay", 5), ("pay", 4)]
    assert latest[0]["environments"] == ["dev", "production"]


def test_migrating_again_and_from_many_threads_at_once(config: Config) -> None:
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            store = open_store(config, pooled=False)
            try:
                store.migrate()
            finally:
                store.close()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=migrate) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    store = open_store(config)
    store.migrate()
    add_release(store, "pay", 1)  # the schema is whole
    store.close()
    assert schema.SCHEMA_VERSION == schema.MIGRATIONS[-1].version


def test_concurrent_writers_take_turns(config: Config, store: Store) -> None:
    # Read the highest version, then insert the next: with one writer at a time no two
    # writers get the same number, on either backend.
    def next_release() -> None:
        own = open_store(config)
        try:
            with own.transaction():
                version = (own.highest_version("pay") or 0) + 1
                own.save_application("pay", None)
                own.insert_release(release_fields("pay", version), {"dev": b"x"})
        finally:
            own.close()

    threads = [threading.Thread(target=next_release) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.release_keys() == {("pay", v) for v in range(1, 9)}


def test_an_unreachable_database_is_a_503_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    config = Config.from_env(
        {
            "KUBERPULT_DATA_DIR": str(tmp_path / "data"),
            "KUBERPULT_DATABASE_URL": "postgresql://kl:secret-pw@127.0.0.1:9/none",
        }
    )
    with pytest.raises(Unavailable) as raised:
        open_store(config, pooled=False)
    assert "database is unavailable" in raised.value.message
    assert "secret-pw" not in raised.value.message


def test_a_busy_or_backing_off_pool_falls_back_to_a_connection_of_its_own(
    tmp_path: Path, database_url: str
) -> None:
    (tmp_path / "data").mkdir()
    config = Config.from_env(
        {
            "KUBERPULT_DATA_DIR": str(tmp_path / "data"),
            "KUBERPULT_DATABASE_URL": database_url,
            "KUBERPULT_DB_MAX_OPEN_CONNECTIONS": "2",
        }
    )
    held = [open_store(config) for _ in range(2)]  # the whole pool
    extra = open_store(config)  # waits POOL_TIMEOUT, then connects on its own
    extra.migrate()
    assert extra.count_pending() == 0
    extra.close()
    for store in held:
        store.close()


def test_a_batch_stops_at_the_byte_budget_but_never_comes_back_empty(store: Store) -> None:
    ids = []
    for version, size in enumerate((400, 400, 400, 5000, 10), start=1):
        with store.transaction():
            store.save_application("pay", None)
            ids.append(store.insert_release(release_fields("pay", version), {"dev": b"x" * size}))
    assert [r.id for r in store.pending_releases(10, max_bytes=1000)] == ids[:2]
    assert [r.id for r in store.pending_releases(2)] == ids[:2]
    store.mark_pushed([(i, "a" * 40) for i in ids[:3]])
    # A release bigger than the budget goes alone rather than never.
    assert [r.id for r in store.pending_releases(10, max_bytes=1000)] == [ids[3]]


def settled_generation(store: Store) -> int:
    """The export generation once the listener has connected (connecting moves it)."""
    seen = store.export_generation()
    while True:
        store.wait_for_export(seen, 0.5)
        if store.export_generation() == seen:
            return seen
        seen = store.export_generation()


def test_a_finished_export_wakes_the_waiters_of_every_process(config: Config, store: Store) -> None:
    release_id = add_release(store, "pay", 1)
    seen = settled_generation(store)

    def push() -> None:
        exporter = open_store(config)  # another request's, or another worker's, connection
        exporter.mark_pushed([(release_id, "a" * 40)], status={"ok": True})
        exporter.close()

    threading.Timer(0.2, push).start()
    started = time.monotonic()
    while store.release_state(release_id) == ExportState.PENDING:
        store.wait_for_export(seen, 30)
        seen = store.export_generation()
    # Woken by the push, not by the end of a 30-second wait.
    assert time.monotonic() - started < 15


def test_a_rolled_back_write_wakes_nobody(config: Config, store: Store) -> None:
    release_id = add_release(store, "pay", 1)
    seen = settled_generation(store)
    other = open_store(config)
    with pytest.raises(RuntimeError), other.transaction():
        other._notify_export()
        raise RuntimeError("rolled back")
    other.close()
    store.wait_for_export(seen, 1.0)
    assert store.export_generation() == seen
    assert store.release_state(release_id) == ExportState.PENDING


def add_later(config: Config, seconds: float, versions: list[int]) -> threading.Timer:
    """Releases that another request stores ``seconds`` from now."""

    def add() -> None:
        other = open_store(config)
        for version in versions:
            add_release(other, "pay", version)
        other.close()

    timer = threading.Timer(seconds, add)
    timer.start()
    return timer


def test_a_batch_gathers_as_many_releases_as_the_last_one_carried(
    config: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.repo import gathering
    from server.store import utc_now

    monkeypatch.setattr(gathering, "GATHER_SECONDS", 20.0)
    monkeypatch.setattr(gathering, "QUIET_SECONDS", 20.0)
    add_release(store, "pay", 1)
    store.save_view("export", {"ok": True, "batch_size": 3, "last_attempt_at": utc_now()})
    add_later(config, 0.1, [2, 3])
    batch = gathering.gather(store, store.pending_releases(10), 1e12, store_fetch(store), 10)
    assert [r.version for r in batch] == [1, 2, 3]


def test_a_batch_also_gathers_what_arrived_while_the_last_one_was_made(
    config: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.repo import gathering
    from server.store import utc_now

    monkeypatch.setattr(gathering, "GATHER_SECONDS", 20.0)
    monkeypatch.setattr(gathering, "QUIET_SECONDS", 20.0)
    add_release(store, "pay", 1)
    add_release(store, "pay", 2)
    status = {"ok": True, "batch_size": 2, "left_behind": 2, "last_attempt_at": utc_now()}
    store.save_view("export", status)
    add_later(config, 0.1, [3, 4])  # the two clients the last batch answered come back
    batch = gathering.gather(store, store.pending_releases(10), 1e12, store_fetch(store), 10)
    assert [r.version for r in batch] == [1, 2, 3, 4]


def test_gathering_stops_once_nothing_more_arrives(
    config: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.repo import gathering
    from server.store import utc_now

    monkeypatch.setattr(gathering, "GATHER_SECONDS", 20.0)
    monkeypatch.setattr(gathering, "QUIET_SECONDS", 0.2)
    add_release(store, "pay", 1)
    # A burst of one-off releases: the last batch's clients will not come back.
    status = {"ok": True, "batch_size": 5, "left_behind": 27, "last_attempt_at": utc_now()}
    store.save_view("export", status)
    arrives_later = add_later(config, 10.0, [2])
    try:
        started = time.monotonic()
        batch = gathering.gather(store, store.pending_releases(40), 1e12, store_fetch(store), 40)
        assert [r.version for r in batch] == [1]
        assert time.monotonic() - started < 5.0  # not GATHER_SECONDS
    finally:
        arrives_later.cancel()
        arrives_later.join()


def test_gathering_never_waits_for_more_than_a_push_may_carry(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.repo import gathering
    from server.store import utc_now

    monkeypatch.setattr(gathering, "GATHER_SECONDS", 20.0)
    monkeypatch.setattr(gathering, "QUIET_SECONDS", 20.0)
    for version in (1, 2, 3):
        add_release(store, "pay", version)
    store.save_view("export", {"ok": True, "batch_size": 50, "last_attempt_at": utc_now()})
    started = time.monotonic()
    batch = gathering.gather(store, store.pending_releases(3), 1e12, store_fetch(store), 3)
    assert [r.version for r in batch] == [1, 2, 3]
    assert time.monotonic() - started < 5.0


def test_a_lone_release_does_not_wait(
    config: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.repo import gathering
    from server.store import utc_now

    monkeypatch.setattr(gathering, "GATHER_SECONDS", 20.0)
    monkeypatch.setattr(gathering, "QUIET_SECONDS", 20.0)
    add_release(store, "pay", 1)
    arrives_later = add_later(config, 2.0, [2])
    try:
        for status in (
            {"ok": True, "batch_size": 1, "last_attempt_at": utc_now()},
            {"ok": True, "batch_size": 9, "last_attempt_at": "2026-01-01T00:00:00Z"},
            {"ok": False, "batch_size": 9, "last_attempt_at": utc_now()},
        ):
            store.save_view("export", status)
            batch = gathering.gather(
                store, store.pending_releases(10), 1e12, store_fetch(store), 10
            )
            assert [r.version for r in batch] == [1], status
    finally:
        arrives_later.cancel()
        arrives_later.join()


def store_fetch(store: Store) -> Callable[[], list[StoredRelease]]:
    return lambda: store.pending_releases(10)
