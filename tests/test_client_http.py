"""The client's requests and retries, against a scripted local HTTP server."""

from __future__ import annotations

import base64
import subprocess
import sys
import threading
from collections.abc import Iterator
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from action.client import _backoff
from action.client import _retry_after

CLIENT = Path(sys.executable).parent / "kuberpult-client"


class Scripted:
    """An HTTP server that answers with a fixed list of (status, body, headers)."""

    def __init__(self, answers: list[tuple[int, str, dict[str, str]]]) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, str, Message, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                outer.requests.append((self.command, self.path, self.headers, body))
                status, text, headers = outer.answers.pop(0) if outer.answers else (500, "", {})
                self.send_response(status)
                # "X-Test-Truncate": promise more body than is sent, then hang up.
                missing = 100 if headers.get("X-Test-Truncate") else 0
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(text) + missing))
                self.end_headers()
                self.wfile.write(text.encode())
                if missing:
                    self.close_connection = True

            do_POST = do_PUT = do_DELETE = do_GET = _answer  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[type[Scripted]]:
    made: list[Scripted] = []

    def make(answers: list[tuple[int, str, dict[str, str]]]) -> Scripted:
        server = Scripted(answers)
        made.append(server)
        return server

    yield make  # type: ignore[misc]
    for server in made:
        server.close()


def run_client(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLIENT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        cwd=cwd,
        check=False,
    )


def parts(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """The multipart parts of a request body: name -> (filename, content)."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    found: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        disposition: Any = part.get("Content-Disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        found[disposition.params["name"]] = (disposition.params.get("filename"), payload)
    return found


def unsigned_release(manifest: Path) -> list[str]:
    """The release subcommand for application a, one unsigned manifest for environment e."""
    return [
        "release",
        "--skip_signatures",
        "--application",
        "a",
        "--environment",
        "e",
        "--manifest",
        str(manifest),
    ]


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "dev.yaml"
    path.write_bytes(b"kind: Deployment\n")
    return path


def test_503_503_201_sends_the_full_body_three_times(scripted, manifest: Path) -> None:
    server = scripted(
        [
            (503, '{"error":{}}', {"Retry-After": "0"}),
            (503, "", {"Retry-After": "0"}),
            (201, '{"Success":{}}\n', {"X-Release-Version": "7"}),
        ]
    )
    result = run_client(
        "--url",
        server.url + "/prefix",
        "--author_name",
        "some author name",
        "--author_email",
        "some author email",
        "--client_uuid",
        "u-1",
        "release",
        "--skip_signatures",
        "--application",
        "my-app",
        "--environment",
        "development",
        "--manifest",
        str(manifest),
        "--version",
        "7",
        "--source_message",
        "line one\nline two",
        env={
            "KUBERPULT_DEX_ACCESS_TOKEN": "some DEX token",
            "KUBERPULT_IAP_TOKEN": "some IAP token",
        },
    )
    assert result.returncode == 0, result.stderr
    assert len(server.requests) == 3
    for method, path, headers, body in server.requests:
        assert (method, path) == ("POST", "/prefix/api/release")
        assert headers["author-name"] == "c29tZSBhdXRob3IgbmFtZQ=="
        assert headers["author-email"] == "c29tZSBhdXRob3IgZW1haWw="
        assert headers["client-uuid"] == "u-1"
        assert headers["Authorization"] == "Bearer some DEX token"
        assert headers["Proxy-Authorization"] == "Bearer some IAP token"
        sent = parts(body, headers["Content-Type"])
        assert sent["application"] == (None, b"my-app")
        assert sent["manifests[development]"] == ("development-manifest", b"kind: Deployment\n")
        assert sent["version"] == (None, b"7")
        assert sent["source_message"] == (None, b"line one\nline two")
    assert result.stderr.count("attempt ") == 3
    assert "Success: 201" in result.stderr
    assert "released version 7 of 'my-app'" in result.stderr


@pytest.mark.parametrize("status", [400, 401, 403, 409, 413])
def test_client_errors_fail_at_once(scripted, manifest: Path, status: int) -> None:
    body = '{"AlreadyExistsDifferent":{},"error":{"message":"a different manifests"}}'
    server = scripted([(status, body, {}), (201, "", {})])
    result = run_client(
        "--url",
        server.url,
        *unsigned_release(manifest),
    )
    assert result.returncode == 1
    assert len(server.requests) == 1
    assert f"the server answered {status}: a different manifests" in result.stderr


def test_retries_give_up_after_the_last_attempt(scripted, manifest: Path) -> None:
    server = scripted([(502, "bad gateway", {"Retry-After": "0"})] * 3)
    result = run_client(
        "--url",
        server.url,
        "--retries",
        "2",
        *unsigned_release(manifest),
    )
    assert result.returncode == 1
    assert len(server.requests) == 3
    assert "after 3 attempt(s)" in result.stderr


def test_an_unreachable_server_is_exit_1(manifest: Path) -> None:
    from testkit.server import free_port

    result = run_client(
        "--url",
        f"http://127.0.0.1:{free_port()}",
        "--retries",
        "1",
        *unsigned_release(manifest),
    )
    assert result.returncode == 1
    assert "error issuing the HTTP request" in result.stderr


def test_the_timeout_is_honoured(manifest: Path) -> None:
    import socket

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        result = run_client(
            "--url",
            f"http://127.0.0.1:{port}",
            "--timeout",
            "1",
            "--retries",
            "1",
            "release",
            "--skip_signatures",
            "--application",
            "a",
            "--environment",
            "e",
            "--manifest",
            str(manifest),
        )
    assert result.returncode == 1
    assert "timed out" in result.stderr.lower()


def test_signatures_are_sent_as_kuberpult_names_them(
    scripted, tmp_path: Path, manifest: Path
) -> None:
    signature = tmp_path / "dev.asc"
    signature.write_bytes(b"-----BEGIN PGP SIGNATURE-----\n")
    server = scripted([(201, "", {})])
    result = run_client(
        "--url",
        server.url,
        "release",
        "--application",
        "a",
        "--environment",
        "development",
        "--manifest",
        str(manifest),
        "--signature",
        str(signature),
    )
    assert result.returncode == 0, result.stderr
    _, _, headers, body = server.requests[0]
    sent = parts(body, headers["Content-Type"])
    assert sent["signatures[development]"] == (
        "development-signature",
        b"-----BEGIN PGP SIGNATURE-----\n",
    )
    assert "author-name" not in headers


def test_lock_requests(scripted) -> None:
    server = scripted([(201, "{}", {}), (200, "{}", {}), (201, "{}", {})])
    created = run_client(
        "--url",
        server.url,
        "--author_name",
        "Ops",
        "create-env-lock",
        "--environment",
        "dev",
        "--lockID",
        "freeze",
        "--message",
        "hold on",
        "--suggested_lifetime",
        "2h",
        "--ci_link",
        "https://ci/1",
    )
    assert created.returncode == 0, created.stderr
    deleted = run_client(
        "--url",
        server.url,
        "delete-app-lock",
        "--environment",
        "dev",
        "--application",
        "app",
        "--lockID",
        "freeze",
    )
    assert deleted.returncode == 0
    team = run_client(
        "--url",
        server.url,
        "create-team-lock",
        "--environment",
        "dev",
        "--team",
        "pay",
        "--lockID",
        "l",
        "--message",
        "m",
    )
    assert team.returncode == 0
    (m1, p1, h1, b1), (m2, p2, _, _), (m3, p3, _, _) = server.requests
    assert (m1, p1) == ("PUT", "/environments/dev/locks/freeze")
    assert b1 == b'{"message": "hold on", "ciLink": "https://ci/1", "suggestedLifeTime": "2h"}'
    assert base64.b64decode(h1["author-name"]) == b"Ops"
    assert (m2, p2) == ("DELETE", "/environments/dev/applications/app/locks/freeze")
    assert (m3, p3) == ("PUT", "/api/environments/dev/lock/team/pay/l")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["create-team-lock", "--environment", "d", "--team", "t", "--lockID", "l"],
            "the --message arg must be set exactly once and must not be empty",
        ),
        (["create-env-lock", "--environment", "d"], "the --lockID arg must be set exactly once"),
        (
            [
                "create-env-lock",
                "--environment",
                "d",
                "--lockID",
                "l",
                "--suggested_lifetime",
                "0h",
            ],
            "provided invalid --suggested_lifetime value '0h'",
        ),
        (
            ["delete-env-lock", "--environment", "d", "--lockID", "l", "extra"],
            'these arguments are not recognised: "extra"',
        ),
    ],
)
def test_lock_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = run_client("--url", "http://127.0.0.1:9", *args)
    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [],
            "error while parsing command line arguments, error: error while creating kuberpult "
            "client parameters, error: the --url arg must be set exactly once",
        ),
        (["--url", "x"], "a subcommand must be specified"),
        (["--url", "x", "fly"], "unknown subcommand fly"),
        (
            ["--url", "x", "release-train", "--team", "t"],
            "the --target-environment arg must be set exactly once",
        ),
        (
            ["--url", "x", "release-train", "--target-environment", "p", "extra"],
            'these arguments are not recognised: "extra"',
        ),
        (
            ["--url", "x", "release-train", "--target-environment", "p", "--ci_link", "x y"],
            "provided invalid --ci_link value 'x y'",
        ),
        (
            ["--url", "x", "get-commit-deployments"],
            "the commit hash must be set with the --commit flag",
        ),
        (
            ["--url", "x", "get-commit-deployments", "--commit", ":" * 40],
            f"the commit hash: {':' * 40} is invalid",
        ),
        (
            ["--url", "x", "get-deployment-commit", "--environment", "e"],
            "the --application arg must be set exactly once",
        ),
        (["--url", "x", "delete-environment"], "the --environment arg must be set exactly once"),
        (
            ["--url", "x", "create-group-lock", "--lockID", "l"],
            "the --environment-group arg must be set exactly once",
        ),
        (
            ["--url", "x", "deploy", "--environment", "e", "--application", "a", "--version", "0"],
            "--version arg value must be positive",
        ),
        (
            [
                "--url",
                "x",
                "deploy",
                "--environment",
                "e",
                "--application",
                "a",
                "--version",
                "1",
                "--lock_behavior",
                "skip",
            ],
            "provided invalid --lock_behavior value 'skip'",
        ),
        (
            ["--url", "x", "release", "--application", "a"],
            "error while parsing command line args, error: error while reading command line "
            "arguments, error: the args --environment and --manifest must be set at least once",
        ),
        (
            ["--url", "x", "--oauth_token_url", "http://127.0.0.1:9/token", "release"],
            "--oauth_token_url needs KUBERPULT_OAUTH_CLIENT_ID",
        ),
    ],
)
def test_usage_errors_exit_2_with_kuberpults_messages(args: list[str], message: str) -> None:
    result = run_client(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_help_goes_to_stdout() -> None:
    result = run_client("--url", "x", "help")
    assert result.returncode == 0
    assert "release" in result.stdout


def test_help_needs_no_url_and_lists_the_global_flags() -> None:
    for args in (["help"], ["--help"], ["-h"]):
        result = run_client(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert "subcommands:" in result.stdout
    listing = run_client("--help").stdout
    assert "  -url string\n" in listing and "  -retries int\n" in listing


@pytest.mark.parametrize(
    ("subcommand", "flags"),
    [
        ("release", ["-application string", "-display_version string", "-version int", "-dry-run"]),
        ("create-env-lock", ["-environment string", "-lockID string", "-message string"]),
        ("delete-app-lock", ["-environment string", "-application string", "-lockID string"]),
        ("create-team-lock", ["-team string", "-suggested_lifetime string"]),
    ],
)
def test_a_subcommands_help_lists_its_flags_and_exits_0(subcommand: str, flags: list[str]) -> None:
    for spelling in ("--help", "-help", "-h"):
        result = run_client("--url", "x", subcommand, spelling)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"Usage of {subcommand}:\n")
        for flag in flags:
            assert f"  {flag}\n    \t" in result.stdout
        assert result.stderr == ""


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (
            ["release", "--display-version", "v1"],
            "-display-version (did you mean -display_version?)",
        ),
        (["create-env-lock", "--lock_id", "x"], "-lock_id (did you mean -lockID?)"),
        (["create-env-lock", "--lockid", "x"], "-lockid (did you mean -lockID?)"),
        (["release", "--aplication", "a"], "-aplication (did you mean -application?)"),
        (["--URL", "x", "release"], "-URL (did you mean -url?)"),
    ],
)
def test_a_near_miss_flag_gets_a_did_you_mean(args: list[str], hint: str) -> None:
    prefix = [] if args[0].startswith("--") else ["--url", "x"]
    result = run_client(*prefix, *args)
    assert result.returncode == 2
    assert f"flag provided but not defined: {hint}" in result.stderr


def test_an_unknown_flag_far_from_any_gets_no_guess() -> None:
    result = run_client("--url", "x", "release", "--zzz", "1")
    assert result.returncode == 2
    assert result.stderr.rstrip().endswith("flag provided but not defined: -zzz")


def test_prepublish_without_dex_is_exit_1(manifest: Path) -> None:
    result = run_client(
        "--url",
        "http://127.0.0.1:9",
        *unsigned_release(manifest),
        "--prepublish",
    )
    assert result.returncode == 1
    assert "prepublish endpoint is only available" in result.stderr


def test_backoff_and_retry_after() -> None:
    assert [_backoff(n) for n in (1, 2, 3, 4, 10)] == [1, 2, 4, 8, 30]
    assert _retry_after("5", 1.0) == 5
    assert _retry_after("9999", 1.0) == 120
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 2.0) == 2.0
    assert _retry_after(None, 3.0) == 3.0
