"""A clone marked clean, while the store says another replica pushed since, fetches before it
commits: the batch is not committed on the old head only for the push to be refused."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

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
            db.execute(
                "update repository_views set json = ? where name = 'export'",
                [json.dumps({**json.loads(status), "head": head})],
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
