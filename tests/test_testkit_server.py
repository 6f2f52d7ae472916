"""The test harness's server: a port taken between choosing and binding it is not mistaken
for this server (another test's server answered /healthz, then refused a release with 401)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from testkit.remote import make_bare_remote
from testkit.server import Server
from testkit.server import open_without_auth


class SomeoneElse(BaseHTTPRequestHandler):
    """Healthy to /healthz, refuses every release: what another test's server looks like."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def do_POST(self) -> None:
        self.send_response(401)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def taken_port() -> Iterator[int]:
    other = ThreadingHTTPServer(("127.0.0.1", 0), SomeoneElse)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    yield other.server_address[1]
    other.shutdown()
    other.server_close()


def test_a_port_taken_by_another_server_is_not_mistaken_for_ours(
    tmp_path: Path, taken_port: int
) -> None:
    remote = make_bare_remote(tmp_path / "remote.git")
    server = Server(tmp_path / "data", {**open_without_auth({}), "KUBERPULT_GIT_URL": remote.url})
    server.use_port(taken_port)
    try:
        server.start()
        assert server.port != taken_port
        assert "Connection in use" in server.log()
        assert server.release("taken-port-app").status_code == 201
    finally:
        server.stop()
