"""Bytes as sent: text parts get the UTF-8 rule of file parts, and a manifest with any tag
that was accepted compares with a resend without an error."""

from __future__ import annotations

import sqlite3

import pytest
import requests
from flask import Flask
from werkzeug.exceptions import RequestEntityTooLarge

from server.http.multipart import raw_parts
from testkit.remote import Remote
from testkit.server import Server
from testkit.server import unique_app

BOUNDARY = "b0undary"


def body(*parts: tuple[str, bytes, str]) -> bytes:
    """A multipart body; each part is (name, content, extra header lines)."""
    out = b""
    for name, content, extra in parts:
        out += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"'.encode()
        out += f"{extra}\r\n\r\n".encode() + content + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def read(data: bytes, **config: int) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """``raw_parts`` of a request with this body, under the app's form limits."""
    app = Flask(__name__)
    app.config.update(config)
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    with app.test_request_context(
        "/api/release", method="POST", data=data, content_type=content_type
    ):
        from flask import request

        return raw_parts(request)


def test_text_parts_keep_their_bytes() -> None:
    values, files = read(
        body(
            ("source_message", b"\xff\xfe not UTF-8", ""),
            ("team", "caf\xe9".encode("latin-1"), "\r\nContent-Type: text/plain; charset=latin-1"),
            ("source_author", "\ufffd".encode(), ""),
            ("manifests[development]", b"a: \xff", '; filename="m.yaml"'),
            ("source_author", b"again", ""),
        )
    )
    assert values == [
        ("source_message", b"\xff\xfe not UTF-8"),
        ("team", b"caf\xe9"),  # a declared charset changes nothing: bytes are bytes
        ("source_author", "\ufffd".encode()),
        ("source_author", b"again"),
    ]
    assert files == [("manifests[development]", b"a: \xff")]


def test_the_form_limits_still_apply_to_text_parts() -> None:
    with pytest.raises(RequestEntityTooLarge):
        read(body(("source_message", b"x" * 1001, "")), MAX_FORM_MEMORY_SIZE=1000)
    assert read(body(("source_message", b"x" * 500, "")), MAX_FORM_MEMORY_SIZE=1000)[0]
    with pytest.raises(RequestEntityTooLarge):
        read(body(*[("team", b"x", "")] * 4), MAX_FORM_PARTS=3)
    with pytest.raises(RequestEntityTooLarge):
        read(body(("team", b"x" * 200, "")), MAX_CONTENT_LENGTH=100)


def test_a_form_read_before_is_refused_not_misread() -> None:
    app = Flask(__name__)
    data = body(("team", b"x", ""))
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    with app.test_request_context("/", method="POST", data=data, content_type=content_type):
        from flask import request

        assert request.form["team"] == "x"
        with pytest.raises(RuntimeError, match="read before"):
            raw_parts(request)


def stored(server: Server, app: str) -> int:
    with sqlite3.connect(server.data_dir / "kuberpult.sqlite3") as db:
        (count,) = db.execute(
            "select count(*) from releases where application = ?", [app]
        ).fetchone()
    return int(count)


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
    assert stored(server, app) == 0
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
    assert stored(server, app) == 1
    assert remote.head() == head
    assert (
        remote.read(f"applications/{app}/releases/4/environments/development/manifests.yaml")
        == manifest
    )
