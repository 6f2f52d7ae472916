"""A release that cannot be written is taken out of its batch with its own reason; the
releases around it are pushed."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from testkit.remote import Remote
from testkit.server import unique_app


def test_a_poison_release_among_twenty_good_ones(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    poisoned = unique_app("poison")
    # Someone with push access planted a symlink where this application's releases go.
    outside = bare_remote.plant_symlink(tmp_path, f"applications/{poisoned}/releases")
    bare_remote.push_files(tmp_path, {"environments/development/config.json": "{}"})
    server = start_server(bare_remote, KUBERPULT_MAX_COMMITS_PER_PUSH="25")
    good = [unique_app() for _ in range(20)]
    with ThreadPoolExecutor(max_workers=21) as pool:
        answers = list(pool.map(lambda app: server.release(app), [poisoned, *good]))
    poison_answer, *good_answers = answers
    assert poison_answer.status_code == 409, poison_answer.text
    assert poison_answer.json()["error"]["code"] == "unsafe_repository_path"
    assert [a.status_code for a in good_answers] == [201] * 20
    for app in good:
        assert bare_remote.exists(f"applications/{app}/releases/1")
    assert not any(outside.iterdir())


def test_a_stored_row_that_cannot_be_committed_does_not_block_the_queue(
    start_server, bare_remote: Remote
) -> None:
    # A row from before the author rule (or written by hand) whose author would break the
    # commit stream: it fails alone, with its reason, and the next releases are pushed.
    server = start_server(bare_remote, KUBERPULT_RECOVERY_INTERVAL="0")
    assert server.release(unique_app()).status_code == 201
    bad = unique_app("legacy")
    with sqlite3.connect(server.data_dir / "kuberpult.sqlite3") as db:
        db.execute("insert into applications (name, created_at) values (?, 'x')", [bad])
        cursor = db.execute(
            "insert into releases (application, version, author_name, author_email, "
            "created_at, state) values (?, 1, ?, 'a@b', '2026-01-01T00:00:00Z', 'pending')",
            [bad, "Evil\ncommit refs/heads/main"],
        )
        db.execute(
            "insert into release_manifests (release_id, environment, content) "
            "values (?, 'development', ?)",
            [cursor.lastrowid, b"a: 1\n"],
        )
    apps = [unique_app() for _ in range(3)]
    assert [server.release(app).status_code for app in apps] == [201] * 3
    # The poison row is the oldest pending one: the first batch after it took it out.
    receipt = requests.get(f"{server.url}/api/applications/{bad}/releases/1", timeout=10).json()
    assert receipt["state"] == "failed"
    assert "newline" in receipt["error"]
    assert not bare_remote.exists(f"applications/{bad}")
    assert all("commit refs/heads/main" not in line for line in bare_remote.log("%an"))


def test_a_failed_release_does_not_block_a_different_resend(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    app = unique_app()
    bare_remote.plant_symlink(tmp_path, f"applications/{app}/releases")
    server = start_server(bare_remote)
    failed = server.release(app, {"development": "a: 1"}, fields={"version": "1"})
    assert failed.status_code == 409, failed.text
    bare_remote.push_files(tmp_path, {f"applications/{app}/releases": None})  # repaired
    fixed = server.release(app, {"development": "a: 2"}, fields={"version": "1"})
    assert fixed.status_code == 201, fixed.text
    path = f"applications/{app}/releases/1/environments/development/manifests.yaml"
    assert bare_remote.read(path) == b"a: 2"


def test_a_refusal_is_decided_on_the_remotes_tree_not_a_stale_clone(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    # The clone is marked clean by any finished edit; a repair pushed after that must still
    # be seen by the next release (CI once caught a second worker's start-up doing this).
    app = unique_app()
    bare_remote.plant_symlink(tmp_path, f"applications/{app}/releases")
    bare_remote.push_files(
        tmp_path, {"environments/development/config.json": '{"upstream": {"latest": true}}'}
    )
    server = start_server(bare_remote, workers=1)
    assert server.release(app, fields={"version": "1"}).status_code == 409
    lock = requests.put(
        f"{server.url}/environments/development/locks/hold", json={"message": "x"}, timeout=30
    )
    assert lock.status_code == 201, lock.text  # synced the clone and marked it clean
    bare_remote.push_files(tmp_path, {f"applications/{app}/releases": None})  # repaired
    fixed = server.release(app, {"development": "a: 2"}, fields={"version": "1"})
    assert fixed.status_code == 201, fixed.text
    assert bare_remote.exists(f"applications/{app}/releases/1")


def test_an_environment_someone_just_pushed_can_be_locked(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    bare_remote.push_files(tmp_path, {"environments/development/config.json": "{}"})
    server = start_server(bare_remote, workers=1)  # its clone is marked clean at start
    bare_remote.push_files(tmp_path, {"environments/qa/config.json": "{}"})
    lock = requests.put(
        f"{server.url}/environments/qa/locks/hold", json={"message": "x"}, timeout=30
    )
    assert lock.status_code == 201, lock.text
    assert bare_remote.read("environments/qa/locks/hold/message") == b"x"
