"""Reading a release request's multipart body: every part's bytes as sent, the form limits,
and a clear 400 for a body that is not multipart (where Werkzeug's parser read an empty form)."""

from __future__ import annotations

import random
import socket

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
        # A header folded over two lines (obsolete; each continuation cost a rebuild).
        b"--b0undary\r\nContent-Disposition: form-data;\r\n name=a\r\n\r\nx\r\n--b0undary--\r\n",
        # One part, two answers to what it is: the first for a proxy, the last for a parser.
        body(("team", b"x", '\r\nContent-Disposition: form-data; name="application"')),
    ],
)
def test_a_body_that_is_not_multipart_is_a_bad_request(data: bytes) -> None:
    # The message names the defect in the library's words (they differ between versions).
    with pytest.raises(BadRequest, match="not well-formed multipart/form-data: [A-Za-z]\\w* "):
        read(data)


def test_a_header_that_is_not_utf8_is_named_plainly() -> None:
    data = body(("team", b"x", "")).replace(b'name="team"', b'name="te\xffam"')
    with pytest.raises(BadRequest) as refused:
        read(data)
    # The library's words, not the Python objects it carries (the header's bytes among them).
    assert refused.value.message.endswith(": Segment header failed to decode")


@pytest.mark.parametrize(
    ("parameter", "boundary"),
    [
        ('boundary="a[b]"', "a[b]"),
        ("boundary=" + "x" * 201, "x" * 201),
        # RFC 2231's form: a CR in the boundary made where a read ended decide the parts.
        ("boundary*=utf-8''a%0Db", "a\rb"),
    ],
)
def test_a_boundary_outside_rfc_2046_is_refused(parameter: str, boundary: str) -> None:
    app = Flask(__name__)
    data = body(("team", b"x", ""), boundary=boundary)
    content_type = f"multipart/form-data; {parameter}"
    with app.test_request_context("/", method="POST", data=data, content_type=content_type):
        from flask import request

        assert request.mimetype_params["boundary"] == boundary
        with pytest.raises(BadRequest, match="boundary must be 1 to 200"):
            raw_parts(request)


def test_the_closing_delimiter_on_a_read_boundary() -> None:
    # The strict parser refuses bytes after the closing delimiter that arrive in a later
    # read; the CRLF clients send after it must come with the read before it.
    closing = b"--b0undary--"
    for end in [65_536 + shift for shift in range(-3, 4)] + [2 * 65_536, 2 * 65_536 + 1]:
        head = body(("team", b"x", ""))[: -len(closing) - 2]
        padding = end - len(head) - len(closing)
        data = body(("team", b"x" * (1 + padding), ""))
        assert data.index(closing) + len(closing) == end
        assert read(data)[0] == [("team", b"x" * (1 + padding))]


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


def test_a_body_whose_chunked_framing_is_broken_is_400(shared: tuple[Server, Remote]) -> None:
    server, remote = shared
    app = unique_app()
    head = remote.head()
    whole = body(("application", app.encode(), ""))
    host, port = server.url.removeprefix("http://").split(":")
    for framing in [b"zz\r\n" + whole, b"%x\r\n" % len(whole) + whole + b"XX0\r\n\r\n"]:
        with socket.create_connection((host, int(port)), timeout=30) as connection:
            connection.sendall(
                b"POST /api/release HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Content-Type: multipart/form-data; boundary=b0undary\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n" + framing
            )
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
        assert b"could not be read" in answer
    assert server.stored_releases(app) == 0
    assert remote.head() == head
