"""Group commit: concurrent releases from every worker ride the next push."""

from __future__ import annotations

import threading
from pathlib import Path

import requests

from testkit.remote import Remote
from testkit.remote import git
from testkit.server import Server
from testkit.server import unique_app


def slow_counting_remote(remote: Remote, delay: float) -> Path:
    """A remote that takes ``delay`` seconds per push (like a hosted forge) and counts pushes."""
    counter = remote.path / "pushes.log"
    pre = remote.path / "hooks" / "pre-receive"
    pre.write_text(f"#!/bin/sh\ncat >/dev/null\nsleep {delay}\n")
    post = remote.path / "hooks" / "post-receive"
    post.write_text(f"#!/bin/sh\ncat >/dev/null\necho push >> {counter}\n")
    pre.chmod(0o755)
    post.chmod(0o755)
    return counter


def release_all(server: Server, apps: list[str]) -> list[requests.Response]:
    results: list[requests.Response] = []
    lock = threading.Lock()

    def send(app: str) -> None:
        response = server.release(app, {"development": f"app: {app}\n".encode()})
        with lock:
            results.append(response)

    threads = [threading.Thread(target=send, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_releases_share_pushes(start_server, bare_remote: Remote) -> None:
    counter = slow_counting_remote(bare_remote, 0.3)
    server = start_server(bare_remote, workers=4)
    pushes_before = len(counter.read_text().split()) if counter.exists() else 0
    apps = [unique_app() for _ in range(24)]
    results = release_all(server, apps)
    assert sorted(r.status_code for r in results) == [201] * 24, [r.text for r in results]
    pushes = len(counter.read_text().split()) - pushes_before
    assert pushes < 12, f"{pushes} pushes for 24 concurrent releases"
    messages = bare_remote.log()
    for app in apps:
        assert messages.count(f'created version 1 of "{app}"') == 1
    # Every answer names the commit that holds its release, on the remote.
    for response in results:
        sha = response.headers["X-Manifest-Commit"]
        git("merge-base", "--is-ancestor", sha, "main", cwd=bare_remote.path)


def test_a_release_that_cannot_be_applied_does_not_sink_the_batch(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    outside = bare_remote.plant_symlink(tmp_path, "applications/victim")
    slow_counting_remote(bare_remote, 0.3)
    server = start_server(bare_remote, workers=2)
    apps = [unique_app() for _ in range(8)]
    results = release_all(server, [*apps[:4], "victim", *apps[4:]])
    by_status = sorted(r.status_code for r in results)
    assert by_status == [201] * 8 + [409], [r.text for r in results]
    for app in apps:
        assert bare_remote.exists(f"applications/{app}/releases/1")
    assert list(outside.iterdir()) == []


def test_a_push_carries_at_most_its_byte_budget(start_server, bare_remote: Remote) -> None:
    counter = slow_counting_remote(bare_remote, 0.3)
    server = start_server(bare_remote, workers=2, KUBERPULT_MAX_BYTES_PER_PUSH=str(2**20))
    pushes_before = len(counter.read_text().split()) if counter.exists() else 0
    big = b"data: |\n" + b"  " + b"x" * (400 * 1024) + b"\n"  # 400 KiB: two fit in 1 MiB
    results: list[requests.Response] = []

    def send(app: str) -> None:
        results.append(server.release(app, {"development": big}))

    threads = [threading.Thread(target=send, args=(unique_app(),)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in results] == [201] * 6, [r.text for r in results]
    pushes = len(counter.read_text().split()) - pushes_before
    assert pushes >= 3, f"6 releases of 400 KiB in {pushes} pushes of at most 1 MiB"
    batches = [
        line
        for line in server.log().splitlines()
        if '"event": "push"' in line and '"ok": true' in line
    ]
    assert batches and all('"batch_size": 1' in b or '"batch_size": 2' in b for b in batches)
