"""Bytes as sent: text parts get the UTF-8 rule of file parts, and a manifest with any tag
that was accepted compares with a resend without an error."""

from __future__ import annotations

import pytest
import requests

from testkit.remote import Remote
from testkit.server import Server
from testkit.server import unique_app


def post(server: Server, parts: list[tuple[str, tuple[str | None, bytes]]]) -> requests.Response:
    return requests.post(server.url + "/api/release", files=parts, timeout=60)


@pytest.mark.parametrize(
    ("name", "field"),
    [("source_message", "source_message"), ("manifests[development]", "manifests[development]")],
)
def test_invalid_utf8_in_a_text_part_is_400_naming_it(
    shared: tuple[Server, Remote], name: str, field: str
) -> None:
    server, remote = shared
    app = unique_app()
    head = remote.head()
    parts: list[tuple[str, tuple[str | None, bytes]]] = [
        ("application", (None, app.encode())),
        ("manifests[development]", ("development-manifest", b"kind: Deployment\n")),
    ]
    parts = [p for p in parts if p[0] != name] + [(name, (None, b"a: \xff\xfe"))]
    response = post(server, parts)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert "not valid UTF-8" in error["message"]
    if name == "source_message":
        assert error["message"] == "source_message is not valid UTF-8"
    assert server.stored_releases(app) == 0
    assert remote.head() == head


def test_a_replacement_character_sent_on_purpose_is_stored(shared: tuple[Server, Remote]) -> None:
    server, _ = shared
    app = unique_app()
    message = "Fix \ufffd in the parser"
    response = post(
        server,
        [
            ("application", (None, app.encode())),
            ("version", (None, b"3")),
            ("source_message", (None, message.encode())),
            ("manifests[development]", ("development-manifest", b"kind: Deployment\n")),
        ],
    )
    assert response.status_code == 201, response.text
    receipt = requests.get(f"{server.url}/api/applications/{app}/releases/3", timeout=30)
    assert receipt.json()["source_message"] == message


@pytest.mark.parametrize(
    ("manifest", "reformatted", "other"),
    [
        (b"a: !Ref x\n", b"# the same\na:   !Ref 'x'", b"a: !Ref y\n"),
        (b"a: !!int abc\n", b'{"a": !!int "abc"}', b"a: !!int abd\n"),
        (b"a: !Sub {b: 1, c: 2}\n", b"a: !Sub\n  c: 2\n  b: 1\n", b"a: {b: 1, c: 2}\n"),
    ],
)
def test_a_tagged_manifest_is_compared_never_500(
    shared: tuple[Server, Remote], manifest: bytes, reformatted: bytes, other: bytes
) -> None:
    server, remote = shared
    app = unique_app()
    first = server.release(app, {"development": manifest}, fields={"version": "4"})
    assert first.status_code == 201, first.text
    head = remote.head()
    same = server.release(app, {"development": reformatted}, fields={"version": "4"})
    assert same.status_code == 200, same.text
    assert same.json() == {"AlreadyExistsSame": {}}
    different = server.release(app, {"development": other}, fields={"version": "4"})
    assert different.status_code == 409, different.text
    assert different.json()["error"]["field"] == "manifests"
    diff = different.json()["AlreadyExistsDifferent"]["diff"]
    assert f"-{manifest.decode().splitlines()[0]}\n" in diff
    assert server.stored_releases(app) == 1
    assert remote.head() == head
    assert (
        remote.read(f"applications/{app}/releases/4/environments/development/manifests.yaml")
        == manifest
    )
