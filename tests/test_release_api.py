"""End to end: releases through a real gunicorn server into a real bare remote."""

from __future__ import annotations

import requests

from testkit.remote import Remote
from testkit.server import Server
from testkit.server import author_headers
from testkit.server import unique_app

SHA = "0123456789abcdef0123456789abcdef01234567"
PREV = "89abcdef0123456789abcdef0123456789abcdef"


def test_release_writes_kuberpults_layout_and_pushes(shared: tuple[Server, Remote]) -> None:
    server, remote = shared
    app = unique_app()
    manifest = b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n"
    response = server.release(
        app,
        {"development": manifest, "staging": b"kind: Service\n"},
        fields={
            "version": "7",
            "team": "payments",
            "source_commit_id": SHA.upper(),
            "previous_commit_id": PREV,
            "source_author": "Jane Doe <jane@example.com>",
            "source_message": "Fix the thing\n\nwith a body",
            "display_version": "v1.2.3",
            "ci_link": "https://ci.example.com/run/1",
        },
    )
    assert response.status_code == 201, response.text
    assert response.json() == {"Success": {}}
    assert response.text == '{"Success":{}}\n'
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Location"] == f"/api/applications/{app}/releases/7"
    base = f"applications/{app}/releases/7"
    assert remote.read(f"{base}/environments/development/manifests.yaml") == manifest
    assert remote.read(f"{base}/environments/staging/manifests.yaml") == b"kind: Service\n"
    assert remote.read(f"{base}/source_commit_id") == SHA.encode()
    assert remote.read(f"{base}/source_author") == b"Jane Doe <jane@example.com>"
    assert remote.read(f"{base}/source_message") == b"Fix the thing\n\nwith a body"
    assert remote.read(f"{base}/display_version") == b"v1.2.3"
    assert remote.read(f"{base}/created_at").decode().endswith("Z")
    assert remote.read(f"applications/{app}/team") == b"payments"
    assert remote.log()[0] == f'created version 7 of "{app}"'
    assert remote.head() == response.headers["X-Manifest-Commit"]


def test_optional_files_are_written_only_when_given(shared: tuple[Server, Remote]) -> None:
    server, remote = shared
    app = unique_app()
    assert server.release(app, fields={"version": "1"}).status_code == 201
    files = [f for f in remote.files() if f.startswith(f"applications/{app}/")]
    assert sorted(files) == [
        f"applications/{app}/releases/1/created_at",
        f"applications/{app}/releases/1/environments/development/manifests.yaml",
    ]


def test_receipt_says_where_the_release_landed(shared: tuple[Server, Remote]) -> None:
    server, remote = shared
    app = unique_app()
    created = server.release(app, fields={"version": "3", "team": "core"})
    receipt = requests.get(server.url + created.headers["Location"], timeout=10)
    assert receipt.status_code == 200
    body = receipt.json()
    assert body["state"] == "pushed"
    assert body["commit_sha"] == remote.head()
    assert body["pushed_at"].endswith("Z")
    assert body["environments"] == ["development"]
    assert body["team"] == "core"
    missing = requests.get(server.url + f"/api/applications/{app}/releases/4", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_same_release_twice_is_200_and_different_is_409(shared: tuple[Server, Remote]) -> None:
    server, remote = shared
    app = unique_app()
    first = server.release(app, {"development": b"a: 1\nb: 2\n"}, fields={"version": "5"})
    assert first.status_code == 201
    head = remote.head()
    # Same YAML, other formatting: still the same release.
    again = server.release(app, {"development": b"{b: 2,   a: 1}"}, fields={"version": "5"})
    assert again.status_code == 200
    assert again.text == '{"AlreadyExistsSame":{}}\n'
    assert remote.head() == head
    different = server.release(app, {"development": b"a: 1\nb: 3\n"}, fields={"version": "5"})
    assert different.status_code == 409
    body = different.json()
    assert body["AlreadyExistsDifferent"]["first_differing_field"] == 6
    assert body["AlreadyExistsDifferent"]["diff"] == (
        "--- development-existing\n+++ development-request\n@@ -1,2 +1,2 @@\n a: 1\n-b: 2\n+b: 3\n"
    )
    assert body["error"]["field"] == "manifests"
    assert remote.head() == head


def test_conflict_names_the_first_differing_field(shared: tuple[Server, Remote]) -> None:
    server, remote = shared
    app = unique_app()
    fields = {"version": "2", "source_commit_id": SHA, "display_version": "1.0"}
    assert server.release(app, fields=fields).status_code == 201
    head = remote.head()
    response = server.release(app, fields={**fields, "display_version": "1.1"})
    assert response.status_code == 409
    assert response.json()["AlreadyExistsDifferent"] == {
        "first_differing_field": 4,
        "diff": "--- existing\n+++ request\n@@ -1 +1 @@\n-1.0\n\\ No newline at end of file\n"
        "+1.1\n\\ No newline at end of file\n",
    }
    # Fields the repeat does not send are not compared.
    assert server.release(app, fields={"version": "2"}).status_code == 200
    assert remote.head() == head


def test_author_headers_become_the_commit_author(shared: tuple[Server, Remote]) -> None:
    server, remote = shared
    response = server.release(unique_app(), headers=author_headers("Zoë Müller", "zoe@example.com"))
    assert response.status_code == 201
    assert remote.log("%an <%ae>|%cn")[0] == "Zoë Müller <zoe@example.com>|kuberpult"


def test_without_author_headers_the_default_author_commits(shared: tuple[Server, Remote]) -> None:
    server, remote = shared
    assert server.release(unique_app()).status_code == 201
    assert remote.log("%an <%ae>")[0] == "kuberpult <kuberpult@example.com>"


def test_put_and_trailing_slash_are_accepted(shared: tuple[Server, Remote]) -> None:
    server, _ = shared
    assert server.release(unique_app(), method="PUT").status_code == 201
    assert server.release(unique_app(), path="/api/release/").status_code == 201
    assert server.release(unique_app(), path="/release").status_code == 201


def test_parts_may_arrive_in_any_order(shared: tuple[Server, Remote]) -> None:
    server, remote = shared
    app = unique_app()
    boundary = "xyzBOUNDARYxyz"
    parts = [
        ("manifests[development]", "dev-manifest", b"kind: A\n"),
        ("version", None, b"9"),
        ("application", None, app.encode()),
    ]
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    response = requests.post(
        server.url + "/api/release",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert remote.exists(f"applications/{app}/releases/9/environments/development/manifests.yaml")


def test_api_release_needs_auth_or_the_explicit_opt_out(start_server, bare_remote: Remote) -> None:
    server = start_server(bare_remote, KUBERPULT_API_ENABLE_DESPITE_NO_AUTH="false")
    response = server.release(unique_app())
    assert response.status_code == 401
    # The message names the settings that would open it.
    assert "KUBERPULT_API_ENABLE_DESPITE_NO_AUTH=true" in response.json()["error"]["message"]
    # Kuberpult leaves /release open without a keyring; here nothing is open by accident.
    assert server.release(unique_app(), path="/release").status_code == 401
    assert bare_remote.head() is None
