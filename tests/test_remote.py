"""End to end: the push contract with a real remote that moves, disappears and comes back."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import requests

from testkit.remote import Remote
from testkit.remote import git
from testkit.server import unique_app
from testkit.server import wait_for


def test_a_commit_pushed_by_someone_else_is_kept(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    server = start_server(bare_remote)
    first = unique_app()
    assert server.release(first).status_code == 201
    foreign = bare_remote.push_foreign_commit(tmp_path, "docs/README.md", "hello\n")
    second = unique_app()
    response = server.release(second)
    assert response.status_code == 201, response.text
    history = bare_remote.log("%H %s")
    assert any(line.startswith(foreign) for line in history)
    assert bare_remote.read("docs/README.md") == b"hello\n"
    assert bare_remote.exists(f"applications/{first}/releases/1")
    assert bare_remote.exists(f"applications/{second}/releases/1")
    # Only fast-forwards: the foreign commit is an ancestor of the new head.
    git("merge-base", "--is-ancestor", foreign, "main", cwd=bare_remote.path)


def test_unreachable_remote_answers_503_then_the_release_arrives(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    server = start_server(bare_remote)
    assert server.release(unique_app()).status_code == 201
    hidden = tmp_path / "hidden.git"
    bare_remote.path.rename(hidden)
    app = unique_app()
    response = server.release(app, fields={"version": "4"})
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    assert body["error"]["code"] == "push_pending"
    assert body["error"]["release"] == {"application": app, "version": 4}
    receipt = requests.get(f"{server.url}/api/applications/{app}/releases/4", timeout=10).json()
    assert receipt["state"] == "pending"

    hidden.rename(bare_remote.path)
    # The background recovery pushes it without anyone asking again.
    assert wait_for(lambda: bare_remote.exists(f"applications/{app}/releases/4"))
    assert bare_remote.log().count(f'created version 4 of "{app}"') == 1
    again = server.release(app, fields={"version": "4"})
    assert again.status_code == 200
    assert bare_remote.log().count(f'created version 4 of "{app}"') == 1


def test_pending_releases_are_pushed_after_a_restart(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    server = start_server(bare_remote, KUBERPULT_GIT_PUSH_TIMEOUT="5")
    hidden = tmp_path / "hidden.git"
    bare_remote.path.rename(hidden)
    apps = [unique_app() for _ in range(3)]
    for app in apps:
        assert server.release(app).status_code == 503
    server.stop()
    hidden.rename(bare_remote.path)
    start_server(bare_remote)  # same data dir: the same SQLite file
    assert wait_for(
        lambda: all(bare_remote.exists(f"applications/{app}/releases/1") for app in apps)
    )


def test_auto_versions_under_parallel_requests_are_distinct(
    start_server, bare_remote: Remote
) -> None:
    server = start_server(bare_remote, workers=4)
    app = unique_app()
    results: list[requests.Response] = []
    lock = threading.Lock()

    def send(index: int) -> None:
        response = server.release(app, {"development": f"replica: {index}\n".encode()})
        with lock:
            results.append(response)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.status_code for r in results) == [201] * 8, [r.text for r in results]
    versions = sorted(int(r.headers["X-Release-Version"]) for r in results)
    assert versions == list(range(1, 9))
    for version in versions:
        path = f"applications/{app}/releases/{version}/environments/development/manifests.yaml"
        assert bare_remote.exists(path)
    messages = [m for m in bare_remote.log() if app in m]
    assert sorted(messages) == sorted(f'created version {v} of "{app}"' for v in versions)


def test_embedded_default_creates_and_seeds_its_own_remote(start_server, tmp_path: Path) -> None:
    server = start_server()  # no KUBERPULT_GIT_URL
    embedded = Remote(server.data_dir / "manifests.git")
    assert json.loads(embedded.read("environments/development/config.json")) == {
        "upstream": {"latest": True}
    }
    assert json.loads(embedded.read("environments/staging/config.json")) == {
        "upstream": {"environment": "development"}
    }
    app = unique_app()
    assert server.release(app).status_code == 201
    assert embedded.exists(f"applications/{app}/releases/1")


def test_a_branch_the_remote_lacks_is_created_by_the_first_push(
    start_server, bare_remote: Remote
) -> None:
    server = start_server(bare_remote, KUBERPULT_GIT_BRANCH="manifests/prod")
    app = unique_app()
    assert server.release(app).status_code == 201
    branch = Remote(bare_remote.path, "manifests/prod")
    assert branch.exists(f"applications/{app}/releases/1")


def test_a_symlink_in_the_remote_is_never_written_through(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    outside = bare_remote.plant_symlink(tmp_path, "applications/victim")
    head = bare_remote.head()

    server = start_server(bare_remote)
    response = server.release("victim", fields={"version": "1"})
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "unsafe_repository_path"
    assert "applications/victim" in response.json()["error"]["message"]
    assert list(outside.iterdir()) == []
    assert bare_remote.head() == head
    receipt = requests.get(f"{server.url}/api/applications/victim/releases/1", timeout=10).json()
    assert receipt["state"] == "failed"
    # Other applications are not held up by the refused one.
    other = unique_app()
    assert server.release(other).status_code == 201
    assert bare_remote.exists(f"applications/{other}/releases/1")
    assert list(outside.iterdir()) == []
