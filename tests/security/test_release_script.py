"""Attack 10: scripts/release.sh must never put a bearer token on curl's command line, which
every user of the machine can read (``ps``, ``/proc/<pid>/cmdline``)."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from testkit.remote import git
from testkit.server import ROOT

TOKEN = "eyJ-secret-bearer-token-value"
REAL_CURL = "/usr/bin/curl"


@pytest.fixture
def capture() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A server that records each request's headers and answers 201."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(dict(self.headers.items()))
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"Success":{}}')

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "service"
    repo.mkdir()
    git("init", "-q", cwd=repo)
    (repo / "dev.yaml").write_text("kind: Deployment\n")
    git("add", "dev.yaml", cwd=repo)
    git("commit", "-q", "-m", "first", cwd=repo)
    return repo


def curl_shim(directory: Path) -> Path:
    """A ``curl`` first on PATH that records its arguments, then runs the real one."""
    directory.mkdir()
    shim = directory / "curl"
    shim.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" >> "{directory}/argv"\nexec {REAL_CURL} "$@"\n'
    )
    shim.chmod(0o755)
    return directory


@pytest.mark.parametrize("source", ["environment", "file", "stdin"])
def test_the_token_reaches_the_server_but_not_curls_arguments(
    capture: tuple[str, list[dict[str, str]]], checkout: Path, tmp_path: Path, source: str
) -> None:
    url, seen = capture
    shims = curl_shim(tmp_path / "shims")
    args = ["--url", url, "--application", "pay", "development=dev.yaml"]
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}"}
    stdin = None
    if source == "environment":
        env["KUBERPULT_DEX_ACCESS_TOKEN"] = TOKEN
    elif source == "file":
        (tmp_path / "token").write_text(TOKEN + "\n")
        args += ["--token-file", str(tmp_path / "token")]
    else:
        args += ["--token-file", "-"]
        stdin = TOKEN
    result = subprocess.run(
        [str(ROOT / "scripts" / "release.sh"), *args],
        cwd=checkout,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [headers.get("Authorization") for headers in seen] == [f"Bearer {TOKEN}"]
    recorded = (shims / "argv").read_text()
    assert "--form-string" in recorded  # the shim saw the real call
    assert TOKEN not in recorded
    assert TOKEN not in result.stdout + result.stderr
