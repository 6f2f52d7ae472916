"""A push slower than the request: the request answers 503 ``push_pending`` and the push goes on
in the background (never killed at the request's deadline, never started twice)."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from testkit.remote import Remote
from testkit.server import Server
from testkit.server import author_headers
from testkit.server import unique_app
from testkit.server import wait_for

REQUEST_TIMEOUT = 2


def gated_remote(remote: Remote, gate: Path) -> Path:
    """Every push waits (in the remote's pre-receive hook) until ``gate`` exists; each push
    the remote starts to receive is written to the returned log, finished or not."""
    attempts = remote.path / "attempts.log"
    hook = remote.path / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        f"cat >> {attempts}\n"
        f"for i in $(seq 1 300); do [ -e {gate} ] && exit 0; sleep 0.1; done\n"
        "exit 1\n"
    )
    hook.chmod(0o755)
    return attempts


def gated_server(
    start_server, remote: Remote, tmp_path: Path, push_timeout: int, recovery_interval: int
) -> tuple[Server, Path, Path]:
    """A server whose requests wait ``REQUEST_TIMEOUT`` for a remote that holds every push
    until the returned gate file exists; also returns the remote's log of push attempts."""
    server: Server = start_server(
        remote,
        KUBERPULT_REQUEST_TIMEOUT=str(REQUEST_TIMEOUT),
        KUBERPULT_GIT_PUSH_TIMEOUT=str(push_timeout),
        KUBERPULT_RECOVERY_INTERVAL=str(recovery_interval),
    )
    gate = tmp_path / "gate"
    return server, gate, gated_remote(remote, gate)


def test_a_push_past_the_request_deadline_finishes_in_the_background(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    # Not the recovery round: the push that outlived its request must finish by itself.
    server, gate, attempts = gated_server(start_server, bare_remote, tmp_path, 60, 600)
    app = unique_app()

    started = time.monotonic()
    response = server.release(app, fields={"version": "1"})
    waited = time.monotonic() - started

    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "push_pending"
    # Its own push goes on in the background, or another thread's push that took the
    # release along holds the lock: either way, nothing is killed.
    assert "will be pushed" in error["message"]
    assert int(response.headers["Retry-After"]) >= 1
    assert waited < REQUEST_TIMEOUT + 3
    assert not bare_remote.exists(f"applications/{app}/releases/1")

    # Later than the old 5-second push minimum: a push cut at the deadline would be dead now.
    time.sleep(6)
    gate.touch()
    receipt = f"{server.url}/api/applications/{app}/releases/1"
    assert wait_for(lambda: requests.get(receipt, timeout=10).json()["state"] == "pushed")
    assert bare_remote.log().count(f'created version 1 of "{app}"') == 1
    # One push reached the remote, and it was not started again.
    assert attempts.read_text().count(" refs/heads/main") == 1
    # The lock was let go: the next release goes straight through.
    assert server.release(unique_app()).status_code == 201
    assert server.release(app, fields={"version": "1"}).status_code == 200


def test_a_lock_whose_push_is_slow_is_pending_then_made_once(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    bare_remote.push_files(
        tmp_path, {"environments/one/config.json": '{"upstream":{"latest":true}}'}, "env"
    )
    server, gate, _ = gated_server(start_server, bare_remote, tmp_path, 60, 600)
    url = f"{server.url}/environments/one/locks/maintenance"
    headers = author_headers("Ops Person", "ops@example.com")

    response = requests.put(url, json={"message": "db upgrade"}, headers=headers, timeout=30)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "push_pending"
    assert not bare_remote.exists("environments/one/locks/maintenance/message")

    gate.touch()
    assert wait_for(lambda: bare_remote.exists("environments/one/locks/maintenance/message"))
    head = bare_remote.head()
    again = requests.put(url, json={"message": "db upgrade"}, headers=headers, timeout=30)
    assert again.status_code == 200, again.text
    assert bare_remote.head() == head
    assert bare_remote.log().count('Created lock "maintenance" on environment "one"') == 1


def test_a_push_that_fails_in_the_background_leaves_the_release_pending(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    # The push times out (4 s) in the background; the recovery round tries every second.
    server, gate, _ = gated_server(start_server, bare_remote, tmp_path, 4, 1)
    app = unique_app()
    response = server.release(app, fields={"version": "1"})
    assert response.status_code == 503, response.text
    time.sleep(5)
    receipt = f"{server.url}/api/applications/{app}/releases/1"
    assert requests.get(receipt, timeout=10).json()["state"] == "pending"
    # Once the remote lets pushes through, the recovery round delivers it, once.
    gate.touch()
    assert wait_for(lambda: requests.get(receipt, timeout=10).json()["state"] == "pushed")
    assert bare_remote.log().count(f'created version 1 of "{app}"') == 1


def test_a_remote_slower_than_the_request_timeout_still_gets_every_release(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    # Every connection to this remote takes 3 s: longer than a request waits (2 s), far
    # shorter than a push may take (30 s). A sync bounded by the request would never finish.
    delay = tmp_path / "delay"
    delay.write_text("0")
    ssh = tmp_path / "slow-ssh"
    ssh.write_text(
        "#!/bin/sh\n"
        "for last; do :; done\n"  # ssh's last argument is the remote command
        f'sleep "$(cat {delay})"\n'
        'exec sh -c "$last"\n'
    )
    ssh.chmod(0o755)
    server: Server = start_server(
        None,
        KUBERPULT_GIT_URL=f"ssh://slowhost{bare_remote.path}",
        GIT_SSH_COMMAND=str(ssh),
        KUBERPULT_REQUEST_TIMEOUT=str(REQUEST_TIMEOUT),
        KUBERPULT_GIT_PUSH_TIMEOUT="30",
        KUBERPULT_RECOVERY_INTERVAL="1",
    )
    assert server.release(unique_app()).status_code == 201
    delay.write_text("3")
    # Someone else pushes: the clone needs a sync (a fetch: 3 s) before the next batch.
    bare_remote.push_foreign_commit(tmp_path, "docs/README.md", "hello\n")
    app = unique_app()
    assert server.release(app, fields={"version": "1"}).status_code in (201, 503)
    receipt = f"{server.url}/api/applications/{app}/releases/1"
    assert wait_for(lambda: requests.get(receipt, timeout=10).json()["state"] == "pushed", 60)
    assert bare_remote.log().count(f'created version 1 of "{app}"') == 1
    assert bare_remote.read("docs/README.md") == b"hello\n"
