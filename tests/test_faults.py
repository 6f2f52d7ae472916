"""Faults: killed workers, refusing and hanging remotes, stale locks, a busy database."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from testkit.remote import Remote
from testkit.server import Server
from testkit.server import unique_app
from testkit.server import wait_for


def release_commits(remote: Remote, app: str) -> list[str]:
    return [line for line in remote.log() if f'of "{app}"' in line]


@pytest.mark.parametrize("step", ["after-sqlite-commit", "after-git-commit", "after-push"])
def test_a_worker_killed_mid_release_loses_nothing(
    start_server, bare_remote: Remote, step: str
) -> None:
    server = start_server(bare_remote, workers=1, KUBERPULT_TEST_FAULT=step)
    app = unique_app()
    with pytest.raises(requests.ConnectionError):
        server.release(app, fields={"version": "5"})
    # gunicorn starts a new worker; its recovery pushes what the dead one left.
    assert wait_for(lambda: len(release_commits(bare_remote, app)) == 1)
    assert wait_for(
        lambda: (
            requests.get(f"{server.url}/api/applications/{app}/releases/5", timeout=5).json()[
                "state"
            ]
            == "pushed"
        )
    )
    again = server.release(app, fields={"version": "5"})
    assert again.status_code == 200, again.text
    assert release_commits(bare_remote, app) == [f'created version 5 of "{app}"']
    assert (server.data_dir / f"fault-fired-{step}").exists()


def test_a_remote_that_refuses_pushes(start_server, bare_remote: Remote) -> None:
    hook = bare_remote.path / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch: no pushes' >&2\nexit 1\n")
    hook.chmod(0o755)
    server = start_server(bare_remote, KUBERPULT_RECOVERY_INTERVAL="0")
    app = unique_app()
    response = server.release(app)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "push_rejected"
    assert "protected branch: no pushes" in error["message"]
    assert bare_remote.head() is None
    hook.unlink()
    assert server.release(app, fields={"version": "1"}).status_code == 200
    assert bare_remote.exists(f"applications/{app}/releases/1")


@pytest.fixture
def hanging_remote() -> Iterator[str]:
    """A git:// URL whose server accepts the connection and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"git://127.0.0.1:{listener.getsockname()[1]}/manifests.git"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


def test_a_hanging_remote_times_out_with_503_and_the_worker_lives(
    start_server, hanging_remote: str
) -> None:
    server: Server = start_server(KUBERPULT_GIT_URL=hanging_remote, KUBERPULT_GIT_PUSH_TIMEOUT="2")
    started = time.monotonic()
    response = server.release(unique_app())
    elapsed = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert "timed out" in response.json()["error"]["message"]
    assert elapsed < 2 * 2 + 30  # under the gunicorn timeout the server configures
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
    assert response.json()["error"]["code"] == "push_pending"


def test_a_stale_index_lock_and_a_dirty_tree_are_harmless(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    server = start_server(bare_remote)
    assert server.release(unique_app()).status_code == 201
    clone = server.data_dir / "manifests-clone"
    (clone / ".git" / "index.lock").write_text("")
    (clone / "stray-file").write_text("left by a killed git")
    app = unique_app()
    response = server.release(app)
    assert response.status_code == 201, response.text
    assert bare_remote.exists(f"applications/{app}/releases/1")
    assert not bare_remote.exists("stray-file")
    # The next full sync (here forced by someone else's push) cleans both up.
    bare_remote.push_foreign_commit(tmp_path, "docs/x.md", "x\n")
    assert server.release(unique_app()).status_code == 201
    assert not (clone / ".git" / "index.lock").exists()
    assert not (clone / "stray-file").exists()


def test_a_database_locked_too_long_is_503_not_500(start_server, bare_remote: Remote) -> None:
    server = start_server(bare_remote, KUBERPULT_SQLITE_BUSY_TIMEOUT="300")
    blocker = sqlite3.connect(server.data_dir / "kuberpult.sqlite3", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        response = server.release(unique_app())
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "unavailable"
        assert "Retry-After" in response.headers
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert server.release(unique_app()).status_code == 201


def test_a_full_queue_is_503_and_stores_nothing(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    server = start_server(bare_remote, KUBERPULT_MAX_QUEUE="2", KUBERPULT_RECOVERY_INTERVAL="0")
    hidden = tmp_path / "hidden.git"
    bare_remote.path.rename(hidden)
    for _ in range(2):
        assert server.release(unique_app()).status_code == 503  # stored, pending
    app = unique_app()
    full = server.release(app)
    assert full.status_code == 503
    assert full.json()["error"]["code"] == "queue_full"
    assert "Retry-After" in full.headers
    assert (
        requests.get(f"{server.url}/api/applications/{app}/releases/1", timeout=5).status_code
        == 404
    )


def test_a_batch_killed_after_its_push_is_not_committed_again(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    # Two releases of one application in one batch: the second changes the team file the
    # first wrote, so re-applying the first after the crash would not be "no change".
    # The Release-Id trailers tell recovery both are on the remote already.
    server = start_server(
        bare_remote,
        workers=1,
        KUBERPULT_TEST_FAULT="after-push",
        KUBERPULT_GIT_PUSH_TIMEOUT="2",
    )
    hidden = tmp_path / "hidden.git"
    bare_remote.path.rename(hidden)
    app = unique_app()
    for version, team in (("1", "alpha"), ("2", "beta")):
        pending = server.release(app, fields={"version": version, "team": team})
        assert pending.status_code == 503, pending.text
    hidden.rename(bare_remote.path)
    # The recovery thread pushes both in one batch and dies; the next worker recovers.
    assert wait_for(lambda: (server.data_dir / "fault-fired-after-push").exists())
    assert wait_for(
        lambda: all(
            requests.get(f"{server.url}/api/applications/{app}/releases/{v}", timeout=5).json()[
                "state"
            ]
            == "pushed"
            for v in (1, 2)
        )
    )
    assert release_commits(bare_remote, app) == [
        f'created version 2 of "{app}"',
        f'created version 1 of "{app}"',
    ]
    ids = bare_remote.release_ids()
    assert len(ids) == len(set(ids))
