"""How replicas take turns with the manifest repository: a clone marked clean, while the store
says another replica pushed since, fetches before it commits (the batch is not committed on
the old head only for the push to be refused); and a replica leaves the export lease to the
one that pushed a moment ago, whose clone is up to date and whose batch takes its releases."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from server.config import Config
from server.repo.exporter import OTHER_REPLICAS_TURN
from server.repo.exporter import Exporter
from server.store.sqlite import SqliteStore
from testkit.remote import Remote
from testkit.server import Server
from testkit.server import unique_app


def pushed_by_another_replica(server: Server, remote: Remote, tmp: Path, *, tell: bool) -> None:
    """Someone else moves the remote's branch; with ``tell``, the store records that head as
    the last pushed (as another replica's export does on the shared database)."""
    head = remote.push_files(tmp, {"elsewhere.txt": "another replica\n"}, "another replica")
    if tell:
        with sqlite3.connect(server.data_dir / "kuberpult.sqlite3") as db:
            (status,) = db.execute(
                "select json from repository_views where name = 'export'"
            ).fetchone()
            recorded = {**json.loads(status), "head": head, "replica": "another"}
            db.execute(
                "update repository_views set json = ? where name = 'export'",
                [json.dumps(recorded)],
            )


def test_a_head_pushed_by_another_replica_is_fetched_first(
    start_server: Callable[..., Server], bare_remote: Remote, tmp_path: Path
) -> None:
    server = start_server(bare_remote)
    assert server.release(unique_app()).status_code == 201
    pushed_by_another_replica(server, bare_remote, tmp_path, tell=True)
    app = unique_app()
    assert server.release(app).status_code == 201
    assert bare_remote.exists("elsewhere.txt")
    assert bare_remote.exists(f"applications/{app}/releases/1")
    assert "remote moved" not in server.log()


def test_a_push_the_store_does_not_know_is_found_by_the_rejection(
    start_server: Callable[..., Server], bare_remote: Remote, tmp_path: Path
) -> None:
    # The twin: a tool that pushes behind the server's back is only seen when our push is
    # refused (then fetched, and the batch applied again).
    server = start_server(bare_remote)
    assert server.release(unique_app()).status_code == 201
    pushed_by_another_replica(server, bare_remote, tmp_path, tell=False)
    app = unique_app()
    assert server.release(app).status_code == 201
    assert bare_remote.exists("elsewhere.txt")
    assert bare_remote.exists(f"applications/{app}/releases/1")
    assert "remote moved" in server.log()


def turn_left(tmp_path: Path, *, shared: bool, view: Callable[[], dict[str, object]]) -> float:
    """How long replica "b" leaves the lease to others, the store's export view being what
    ``view`` makes (made last: "a moment ago" must still be one; the view is read from a
    local store, only the configuration says the database is shared)."""
    env = {"KUBERPULT_DATA_DIR": str(tmp_path), "KUBERPULT_REPLICA_NAME": "b"}
    if shared:
        env["KUBERPULT_DATABASE_URL"] = "postgresql://kuberpult@127.0.0.1:1/none"
    exporter = Exporter(Config.from_env(env))
    store = SqliteStore(tmp_path / "turns.sqlite3")
    store.migrate()
    store.save_view("export", view())
    return exporter._another_replicas_turn(store)


def pushed(by: str, ago: float, ok: bool = True) -> Callable[[], dict[str, object]]:
    return lambda: {"ok": ok, "replica": by, "pushed_at_epoch": time.time() - ago}


def test_a_replica_leaves_the_lease_to_the_one_that_just_pushed(tmp_path: Path) -> None:
    assert 0 < turn_left(tmp_path, shared=True, view=pushed("a", 0.0)) <= OTHER_REPLICAS_TURN


@pytest.mark.parametrize(
    ("shared", "by", "ago", "ok"),
    [
        (False, "a", 0.0, True),  # one replica on SQLite: nobody else's turn
        (True, "b", 0.0, True),  # its own push
        (True, "a", OTHER_REPLICAS_TURN + 0.5, True),  # the turn is over
        (True, "a", -5.0, True),  # a clock behind the other's: a push from the future
        (True, "a", 0.0, False),  # the other replica's push failed
    ],
)
def test_no_turn_is_left_otherwise(
    tmp_path: Path, shared: bool, by: str, ago: float, ok: bool
) -> None:
    assert turn_left(tmp_path, shared=shared, view=pushed(by, ago, ok)) == 0.0


def test_a_view_from_before_replicas_recorded_themselves_leaves_no_turn(tmp_path: Path) -> None:
    assert turn_left(tmp_path, shared=True, view=lambda: {"ok": True, "batch_size": 3}) == 0.0
