"""The Argo CD webhook after a push, received by a real HTTP server: its payload, its HMAC
signature, retries, and that it never holds up or fails a release."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from server.repo.webhook import web_url
from testkit.remote import Remote
from testkit.server import unique_app
from testkit.server import wait_for

SECRET = "argo-webhook-secret-3f9c"
WEB_URL = "https://git.example.com/acme/manifests"
DEV = '{"upstream":{"latest":true},"argocd":{"destination":{"server":"https://k8s"}}}'


@dataclass
class Receiver:
    """Argo CD's /api/webhook as seen from the network: records requests, answers as told."""

    url: str
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    hold: threading.Event | None = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append(
                (self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            if state.hold is not None:
                state.hold.wait(30)
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    if state.hold is not None:
        state.hold.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def argo_server(start_server, bare_remote: Remote, tmp_path: Path, receiver: Receiver):
    bare_remote.push_files(tmp_path, {"environments/dev/config.json": DEV})
    secret = tmp_path / "webhook-secret"
    secret.write_text(SECRET + "\n")
    server = start_server(
        bare_remote,
        KUBERPULT_ARGO_CD_SERVER=receiver.url,
        KUBERPULT_ARGO_CD_WEBHOOK_SECRET_PATH=str(secret),
        KUBERPULT_GIT_WEB_URL=WEB_URL,
    )
    return server, bare_remote


def test_a_push_sends_a_signed_push_event_naming_the_changed_files(argo_server, receiver) -> None:
    server, remote = argo_server
    before = remote.head()
    app = unique_app()
    assert server.release(app, {"dev": "kind: ConfigMap\n"}).status_code == 201
    assert wait_for(lambda: len(receiver.requests) == 1, timeout=20)
    path, headers, body = receiver.requests[0]
    assert path == "/api/webhook"
    assert headers["x-github-event"] == "push"
    assert headers["content-type"] == "application/json"
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-hub-signature-256"] == f"sha256={expected}"
    event = json.loads(body)
    assert event["ref"] == "refs/heads/main"
    assert (event["before"], event["after"]) == (before, remote.head())
    assert event["repository"] == {"html_url": WEB_URL, "default_branch": "main"}
    assert event["commits"][0]["modified"] == [
        "argocd/v1alpha1/dev.yaml",
        f"environments/dev/applications/{app}/manifests/manifests.yaml",
    ]
    assert event["commits"][0]["removed"] == []
    # The secret itself goes nowhere: not into the log, the config page, the metrics.
    assert SECRET not in server.log()
    assert SECRET not in requests.get(server.url + "/metrics", timeout=10).text
    assert wait_for(
        lambda: (
            'kuberpult_argocd_webhooks_total{outcome="sent"} 1.0'
            in requests.get(server.url + "/metrics", timeout=10).text
        )
    )


def test_a_slow_argo_cd_never_holds_up_a_release(argo_server, receiver) -> None:
    server, _ = argo_server
    receiver.hold = threading.Event()
    # Argo CD does not answer until the release has been answered: a server that waited
    # for the webhook would time out here.
    answer = server.release(unique_app(), {"dev": "a: 1\n"}, timeout=15)
    assert answer.status_code == 201
    assert wait_for(lambda: len(receiver.requests) == 1, timeout=20)
    receiver.hold.set()


def test_server_errors_are_retried_and_a_dead_argo_cd_fails_nothing(argo_server, receiver) -> None:
    server, _ = argo_server
    receiver.statuses = [503, 502]
    assert server.release(unique_app(), {"dev": "a: 1\n"}).status_code == 201
    assert wait_for(lambda: len(receiver.requests) == 3, timeout=30)
    assert receiver.requests[0][2] == receiver.requests[2][2]  # the same event again
    receiver.statuses = [500, 500, 500, 500]
    assert server.release(unique_app(), {"dev": "a: 1\n"}).status_code == 201
    assert wait_for(
        lambda: (
            'kuberpult_argocd_webhooks_total{outcome="failed"} 1.0'
            in requests.get(server.url + "/metrics", timeout=10).text
        ),
        timeout=30,
    )
    # A 4xx (a wrong secret, say) is not retried.
    count = len(receiver.requests)
    receiver.statuses = [400]
    assert server.release(unique_app(), {"dev": "a: 1\n"}).status_code == 201
    assert wait_for(
        lambda: (
            'kuberpult_argocd_webhooks_total{outcome="refused"} 1.0'
            in requests.get(server.url + "/metrics", timeout=10).text
        )
    )
    assert len(receiver.requests) == count + 1


def test_a_push_the_remote_refused_sends_nothing(argo_server, receiver) -> None:
    server, remote = argo_server
    hook = remote.path / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'frozen' >&2\nexit 1\n")
    os.chmod(hook, hook.stat().st_mode | stat.S_IEXEC)
    answer = server.release(unique_app(), {"dev": "a: 1\n"})
    assert answer.status_code == 502
    hook.unlink()
    # The stored release is pushed later by the background round; only that push notifies.
    assert wait_for(lambda: len(receiver.requests) == 1, timeout=30)
    assert json.loads(receiver.requests[0][2])["after"] == remote.head()


@pytest.mark.parametrize(
    ("remote", "web"),
    [
        ("git@github.com:acme/manifests.git", "https://github.com/acme/manifests"),
        ("ssh://git@github.com:22/acme/manifests.git", "https://github.com/acme/manifests"),
        ("https://github.com/acme/manifests.git", "https://github.com/acme/manifests"),
        ("https://gitlab.example.com/a/b", "https://gitlab.example.com/a/b"),
    ],
)
def test_the_web_url_is_derived_from_the_remote(remote: str, web: str) -> None:
    assert web_url(remote) == web
