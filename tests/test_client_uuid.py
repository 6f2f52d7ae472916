"""Idempotent resends: the same ``client-uuid`` and content is the same release, whatever
version the request asks for or leaves to the server."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import requests

from testkit.remote import Remote
from testkit.server import Server
from testkit.server import unique_app
from testkit.server import wait_for
from tests.test_client_e2e import release_args
from tests.test_client_http import run_client


def versions(server: Server, app: str) -> list[int]:
    with sqlite3.connect(server.data_dir / "kuberpult.sqlite3") as db:
        rows = db.execute(
            "select version from releases where application = ? order by version", [app]
        ).fetchall()
    return [int(v) for (v,) in rows]


def test_a_resend_without_a_version_is_the_same_release(shared: tuple[Server, Remote]) -> None:
    server, remote = shared
    app = unique_app()
    uuid = {"client-uuid": "0f8e6c1a-5a4e-4c7e-9d1f-3b2a1c0d9e8f"}
    first = server.release(app, {"development": "a: 1"}, headers=uuid)
    assert first.status_code == 201
    again = server.release(app, {"development": "a: 1\n"}, headers=uuid)
    asked = server.release(app, {"development": "a: 1"}, fields={"version": "9"}, headers=uuid)
    assert (again.status_code, asked.status_code) == (200, 200)
    assert again.headers["X-Release-Version"] == asked.headers["X-Release-Version"] == "1"
    assert versions(server, app) == [1]
    assert remote.log().count(f'created version 1 of "{app}"') == 1


def test_the_same_uuid_with_other_content_is_a_conflict(shared: tuple[Server, Remote]) -> None:
    server, remote = shared
    app = unique_app()
    uuid = {"client-uuid": "build-42"}
    assert server.release(app, {"development": "a: 1"}, headers=uuid).status_code == 201
    head = remote.head()
    other = server.release(app, {"development": "a: 2"}, headers=uuid)
    assert other.status_code == 409
    assert other.json()["AlreadyExistsDifferent"]["first_differing_field"] == 6
    # Another uuid is another release.
    assert (
        server.release(
            app, {"development": "a: 2"}, headers={"client-uuid": "build-43"}
        ).status_code
        == 201
    )
    assert versions(server, app) == [1, 2]
    assert remote.head() != head


def test_a_malformed_uuid_is_refused(shared: tuple[Server, Remote]) -> None:
    server, remote = shared
    head = remote.head()
    app = unique_app()
    for bad in ("has space", "-starts-with-dash", "x" * 200):
        response = server.release(app, headers={"client-uuid": bad})
        assert response.status_code == 400
        assert response.json()["error"]["field"] == "client-uuid"
    assert versions(server, app) == []
    assert remote.head() == head


def test_client_retries_without_a_version_store_one_release(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    server = start_server(bare_remote, KUBERPULT_GIT_PUSH_TIMEOUT="2")
    assert server.release(unique_app()).status_code == 201
    hidden = tmp_path / "hidden.git"
    bare_remote.path.rename(hidden)  # the remote is down: every attempt answers 503
    manifest = tmp_path / "dev.yaml"
    manifest.write_text("kind: Deployment\n")
    app = unique_app()
    result = run_client(*release_args(server, app, manifest, "--skip_signatures", retries=3))
    assert result.returncode != 0
    assert versions(server, app) == [1]
    hidden.rename(bare_remote.path)
    assert wait_for(lambda: bare_remote.exists(f"applications/{app}/releases/1"))
    assert not bare_remote.exists(f"applications/{app}/releases/2")
    receipt = requests.get(f"{server.url}/api/applications/{app}/releases/1", timeout=10)
    assert receipt.json()["state"] in ("pending", "pushed")
