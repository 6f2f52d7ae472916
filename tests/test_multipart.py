"""Reading a release request's multipart body: every part's bytes as sent, the form limits,
and a clear 400 for a body that is not multipart (where Werkzeug's parser read an empty form)."""

from __future__ import annotations

import random

import pytest
import requests
from flask import Flask
from werkzeug.exceptions import RequestEntityTooLarge

from server.errors import BadRequest
from server.errors import PayloadTooLarge
from server.http.multipart import raw_parts
from testkit.remote import Remote
from testkit.server import Server
from testkit.server import unique_app

BOUNDARY = "b0undary"
Parts = list[tuple[str, bytes]]


def body(*parts: tuple[str, bytes, str], boundary: str = BOUNDARY) -> bytes:
    """A multipart body; each part is (name, content, extra header lines)."""
    out = b""
    for name, content, extra in parts:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'.encode()
        out += f"{extra}\r\n\r\n".encode() + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def read(data: bytes, boundary: str = BOUNDARY, **config: int) -> tuple[Parts, Parts]:
    """``raw_parts`` of a request with this body, under the app's form limits."""
    app = Flask(__name__)
    app.config.update(config)
    content_type = f"multipart/form-data; boundary={boundary}"
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


def test_parts_across_read_chunks_keep_every_byte() -> None:
    # The body is read 64 KiB at a time: a boundary or CRLF may fall on any chunk's edge.
    rng = random.Random(7)
    for size in [65_536 - 40 + shift for shift in range(0, 80, 7)] + [200_000]:
        content = rng.randbytes(size).replace(b"\r\n--", b"\n\n--")
        text = b"\r\n" + rng.randbytes(300).replace(b"\r\n--", b"\n\n--") + b"\r"
        values, files = read(
            body(
                ("manifests[staging]", content, '; filename="s"'),
                ("source_message", text, ""),
                ("manifests[production]", content[::-1], '; filename="p"'),
            )
        )
        assert files == [("manifests[staging]", content), ("manifests[production]", content[::-1])]
        assert values == [("source_message", text)]


def test_the_form_limits_apply() -> None:
    with pytest.raises(PayloadTooLarge, match="'source_message' is larger than .* 1000 bytes"):
        read(body(("source_message", b"x" * 1001, "")), MAX_FORM_MEMORY_SIZE=1000)
    assert read(body(("source_message", b"x" * 1000, "")), MAX_FORM_MEMORY_SIZE=1000)[0]
    # The text limit is for text parts; a manifest file has the body's limit.
    big_file = ("manifests[development]", b"x" * 5000, '; filename="m"')
    assert read(body(big_file), MAX_FORM_MEMORY_SIZE=1000)[1]
    with pytest.raises(PayloadTooLarge, match="at most 3 parts"):
        read(body(*[("team", b"x", "")] * 4), MAX_FORM_PARTS=3)
    assert len(read(body(*[("team", b"x", "")] * 3), MAX_FORM_PARTS=3)[0]) == 3
    with pytest.raises(RequestEntityTooLarge):
        read(body(("team", b"x" * 200, "")), MAX_CONTENT_LENGTH=100)
    too_many_headers = "".join(f"\r\nX-Extra-{n}: {n}" for n in range(8))
    with pytest.raises(PayloadTooLarge, match="header"):
        read(body(("team", b"x", too_many_headers)))
    with pytest.raises(PayloadTooLarge, match="header"):
        read(body(("team", b"x", "\r\nX-Long: " + "y" * 5000)))


@pytest.mark.parametrize(
    "data",
    [
        body(("team", b"x", ""))[:-14],  # cut before the closing boundary
        b"no boundary anywhere in this body\r\n",
        b"--b0undary\r\nContent-Type: text/plain\r\n\r\nx\r\n--b0undary--\r\n",
        b"--b0undary\r\nContent-Disposition: form-data; name=a\n\nx\r\n--b0undary--\r\n",
        b"--b0undary\r\nno colon here\r\n\r\nx\r\n--b0undary--\r\n",
        b"--b0undaryX\r\n",
    ],
)
def test_a_body_that_is_not_multipart_is_a_bad_request(data: bytes) -> None:
    # The message names the defect in the library's words (they differ between versions).
    with pytest.raises(BadRequest, match="not well-formed multipart/form-data: [A-Z]\\w+ "):
        read(data)


def test_a_form_read_before_is_refused_not_misread() -> None:
    app = Flask(__name__)
    data = body(("team", b"x", ""))
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    with app.test_request_context("/", method="POST", data=data, content_type=content_type):
        from flask import request

        assert request.form["team"] == "x"
        with pytest.raises(RuntimeError, match="read before"):
            raw_parts(request)


def test_a_truncated_release_is_400_and_stores_nothing(shared: tuple[Server, Remote]) -> None:
    server, remote = shared
    app = unique_app()
    head = remote.head()
    whole = body(
        ("application", app.encode(), ""),
        ("manifests[development]", b"kind: Deployment\n", '; filename="m"'),
    )
    response = requests.post(
        server.url + "/api/release",
        data=whole[: whole.rindex(b"--b0undary")],
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_request"
    assert "not well-formed multipart/form-data" in response.json()["error"]["message"]
    assert server.stored_releases(app) == 0
    assert remote.head() == head


def test_too_many_parts_is_413_and_stores_nothing(shared: tuple[Server, Remote]) -> None:
    server, remote = shared
    app = unique_app()
    head = remote.head()
    parts: list[tuple[str, tuple[str | None, bytes]]] = [("application", (None, app.encode()))]
    parts += [("manifests[development]", ("m", b"kind: Deployment\n"))]
    parts += [("source_message", (None, b"x"))] * 250
    response = requests.post(server.url + "/api/release", files=parts, timeout=30)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"
    assert "at most 250 parts" in response.json()["error"]["message"]
    assert server.stored_releases(app) == 0
    assert remote.head() == head
