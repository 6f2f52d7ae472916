"""The client's HTTP on the standard library: what requests used to do for it, it still does
(retries on a broken answer, TLS with a configured CA bundle), and what it cannot send it
refuses at once instead of retrying (a URL that is not http(s), a header HTTP cannot carry,
an IAP token a proxy would take)."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.test_client_http import Scripted
from tests.test_client_http import run_client
from tests.test_client_http import scripted  # noqa: F401 - the fixture

LOCK = ["create-env-lock", "--environment", "dev", "--lockID", "l1", "--message", "m"]


def test_a_server_error_that_breaks_off_is_retried(scripted) -> None:  # noqa: F811
    server: Scripted = scripted(
        [(503, "half of an ans", {"X-Test-Truncate": "1"}), (201, '{"created": true}', {})]
    )
    result = run_client("--url", server.url, "--retries", "1", *LOCK)
    assert result.returncode == 0, result.stderr
    assert len(server.requests) == 2
    assert "broke off" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("url", ["kuberpult.example.com", "file:///etc/passwd", "ftp://x/"])
def test_a_url_that_is_not_http_is_refused_at_once(url: str) -> None:
    result = run_client("--url", url, "--retries", "3", *LOCK)
    assert result.returncode == 1
    assert "is not an http(s) URL" in result.stderr
    assert "Traceback" not in result.stderr and "Retrying" not in result.stderr


def test_a_header_http_cannot_carry_is_refused_at_once_naming_it(scripted) -> None:  # noqa: F811
    server: Scripted = scripted([(201, "{}", {})])
    result = run_client(
        "--url",
        server.url,
        "--client_uuid",
        "日本",
        "release-train",
        "--target-environment",
        "staging",
    )
    assert result.returncode == 1
    assert "client-uuid header" in result.stderr
    assert server.requests == []


@pytest.fixture
def listener() -> Iterator[tuple[str, list[bytes]]]:
    """A TCP port that records what arrives (standing in for a corporate proxy)."""
    received: list[bytes] = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = sock.accept()
            except OSError:
                continue
            with connection:
                connection.settimeout(1)
                try:
                    received.append(connection.recv(65536))
                except OSError:
                    pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", received
    stop.set()
    thread.join(2)
    sock.close()


def test_an_iap_token_is_never_handed_to_a_proxy(listener) -> None:
    proxy, received = listener
    result = run_client(
        "--url",
        "https://kuberpult.example.com",
        *LOCK,
        env={"HTTPS_PROXY": proxy, "KUBERPULT_IAP_TOKEN": "iap-secret-token"},
    )
    assert result.returncode == 1
    assert "no_proxy" in result.stderr
    assert received == []  # the proxy heard nothing, the token least of all


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An https server with a self-signed certificate for 127.0.0.1, and that certificate."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(201)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_port}", cert
    server.shutdown()
    server.server_close()


def test_tls_is_verified_and_a_configured_ca_bundle_is_honoured(tls_server) -> None:
    url, cert = tls_server
    refused = run_client("--url", url, "--retries", "1", *LOCK)
    assert refused.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    trusted = run_client("--url", url, *LOCK, env={"REQUESTS_CA_BUNDLE": str(cert)})
    assert trusted.returncode == 0, trusted.stderr
