"""Readiness means the remote answered: /readyz is 503 with the reason until a fetch (or a later
check) reached the remote since the server started, and the start-up line says which it is."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from testkit.remote import Remote
from testkit.remote import make_bare_remote
from testkit.server import Server
from testkit.server import unique_app
from testkit.server import wait_for


def readyz(server: Server) -> requests.Response:
    return requests.get(server.url + "/readyz", timeout=30)


def test_an_unreachable_remote_is_not_ready_until_it_answers(start_server, tmp_path: Path) -> None:
    remote = Remote(tmp_path / "not-yet.git")
    # One worker: a second one starting later would find the remote in its own start-up sync.
    server = start_server(remote, workers=1)
    assert "remote NOT reachable: " in server.log()
    assert "does not appear to be a git repository" in server.log()
    response = readyz(server)
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "unavailable"
    assert error["message"].startswith("the manifest repository has not answered yet: ")
    assert "does not appear to be a git repository" in error["message"]
    assert "Retry-After" in response.headers
    assert requests.get(server.url + "/healthz", timeout=10).status_code == 200  # alive

    make_bare_remote(remote.path)
    # Nothing else happens (no release is pending): /readyz itself asks again, now and then.
    assert readyz(server).status_code == 503  # not at every call
    assert wait_for(lambda: readyz(server).status_code == 200, timeout=30)
    app = unique_app()
    assert server.release(app).status_code == 201
    assert remote.exists(f"applications/{app}/releases/1")


def test_a_reachable_remote_is_ready_at_once(start_server, bare_remote: Remote) -> None:
    server = start_server(bare_remote)
    assert "(branch main): remote reachable\n" in server.log()
    response = readyz(server)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"


def test_ready_from_an_earlier_run_does_not_carry_over(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    first = start_server(bare_remote)
    assert readyz(first).status_code == 200
    first.stop()
    bare_remote.path.rename(tmp_path / "hidden.git")
    second = start_server(bare_remote)  # the same data directory and database
    assert "remote NOT reachable: " in second.log()
    assert readyz(second).status_code == 503


def test_the_embedded_remote_is_created_on_first_start(start_server) -> None:
    first = start_server()
    assert "embedded remote, created on first start" in first.log()
    assert readyz(first).status_code == 200, readyz(first).text
    first.stop()
    second = start_server()
    assert "remote reachable" in second.log()
    assert readyz(second).status_code == 200


def test_a_hanging_remote_makes_readyz_wait_only_briefly(start_server) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # accepted by the kernel, never answered
    try:
        url = f"git://127.0.0.1:{listener.getsockname()[1]}/manifests.git"
        server = start_server(KUBERPULT_GIT_URL=url, KUBERPULT_GIT_PUSH_TIMEOUT="2")
        assert "remote NOT reachable: git ls-remote timed out after 2s" in server.log()
        began = time.monotonic()
        response = readyz(server)
        assert response.status_code == 503
        assert "timed out" in response.json()["error"]["message"]
        assert time.monotonic() - began < 10
    finally:
        listener.close()
