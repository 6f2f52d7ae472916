"""The working clone: commits through fast-import, symlink safety, housekeeping (real git)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from server.repo.manifest_repo import ManifestRepo
from server.repo.safe_tree import UnsafePath
from testkit.remote import Remote
from testkit.remote import git

AUTHOR = ("Jane", "jane@example.com")


@pytest.fixture
def repo(bare_remote: Remote, tmp_path: Path) -> ManifestRepo:
    clone = ManifestRepo(tmp_path / "clone", bare_remote.url, "main", tmp_path / "home")
    clone.sync(30)
    return clone


def test_each_snapshot_keeps_its_own_content(repo: ManifestRepo, bare_remote: Remote) -> None:
    first = repo.tree.write(("a", "file"), b"one\n")
    link = repo.tree.symlink(("a", "link"), ("a",))
    assert first and link
    stream = repo.commits(("Bot", "bot@example.com"))
    stream.add("first\n", AUTHOR, [first, link])
    second = repo.tree.write(("a", "file"), b"two\n")
    gone = repo.tree.remove(("a", "link"))
    assert second and gone
    stream.add("second\n", AUTHOR, [second, gone])
    shas = stream.finish()
    repo.push(30)
    assert bare_remote.log("%H %s %an %cn") == [
        f"{shas[1]} second Jane Bot",
        f"{shas[0]} first Jane Bot",
    ]
    assert git("show", f"{shas[0]}:a/file", cwd=bare_remote.path) == "one\n"
    assert git("ls-tree", shas[0], "--", "a/link", cwd=bare_remote.path).startswith("120000")
    assert bare_remote.read("a/file") == b"two\n"
    assert not bare_remote.exists("a/link")
    assert repo.head() == shas[1]


def test_unchanged_writes_report_nothing(repo: ManifestRepo) -> None:
    assert repo.tree.write(("x",), b"same") == "x"
    assert repo.tree.write(("x",), b"same") is None
    assert repo.tree.symlink(("l",), ("x",)) == "l"
    assert repo.tree.symlink(("l",), ("x",)) is None
    assert repo.tree.remove(("missing",)) is None


def test_reads_and_writes_refuse_symlinks_the_remote_holds(
    bare_remote: Remote, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("do not read")
    attacker = tmp_path / "attacker"
    git("init", "-q", "--initial-branch=main", str(attacker), cwd=tmp_path)
    (attacker / "environments").symlink_to(outside)
    (attacker / "file-link").symlink_to(outside / "secret")
    git("add", "-A", cwd=attacker)
    git("commit", "-q", "-m", "plant symlinks", cwd=attacker)
    git("push", "-q", bare_remote.url, "HEAD:refs/heads/main", cwd=attacker)
    repo = ManifestRepo(tmp_path / "clone", bare_remote.url, "main", tmp_path / "home")
    repo.sync(30)
    with pytest.raises(UnsafePath):
        repo.tree.read(("environments", "secret"))
    with pytest.raises(UnsafePath):
        repo.tree.write(("environments", "dev", "config.json"), b"{}")
    with pytest.raises(UnsafePath):
        repo.tree.read(("file-link",))
    with pytest.raises(UnsafePath):
        repo.tree.write(("file-link",), b"overwrite")
    assert not repo.tree.changed
    assert (outside / "secret").read_text() == "do not read"
    assert [p.name for p in outside.iterdir()] == ["secret"]


def commit_one(repo: ManifestRepo, number: int) -> str:
    path = repo.tree.write(("files", f"{number}"), f"{number}\n".encode())
    assert path
    stream = repo.commits(AUTHOR)
    stream.add(f"{number}\n", AUTHOR, [path])
    return stream.finish()[0]


def fsck(path: Path) -> None:
    """Every object reachable from the branch is there and sound. (The clone's index may name
    git's empty tree, which git never stores; the index is rebuilt from HEAD first.)"""
    if (path / ".git").is_dir():
        git("read-tree", "HEAD", cwd=path)
    git("fsck", "--strict", "--no-dangling", cwd=path)


def test_housekeeping_consolidates_the_packs_of_many_batches(repo: ManifestRepo) -> None:
    for number in range(55):
        commit_one(repo, number)
    assert repo.pack_count() >= 55
    repo.housekeeping(120)
    assert repo.pack_count() < 5
    assert git("log", "--format=%s", "-1", cwd=repo.path).strip() == "54"
    fsck(repo.path)


def test_housekeeping_beside_batches_and_pushes_loses_nothing(
    repo: ManifestRepo, bare_remote: Remote
) -> None:
    # Housekeeping takes no lock: it must be safe while the exporter commits and pushes.
    stop = threading.Event()
    failures: list[BaseException] = []

    def tidy() -> None:
        while not stop.is_set():
            try:
                repo.housekeeping(120)
            except BaseException as error:  # noqa: BLE001 - reported below
                failures.append(error)

    tidier = threading.Thread(target=tidy)
    tidier.start()
    try:
        shas = []
        for number in range(60):
            shas.append(commit_one(repo, number))
            if number % 3 == 2:
                repo.push(30)
        repo.push(30)
    finally:
        stop.set()
        tidier.join()
    assert failures == []
    fsck(repo.path)
    fsck(bare_remote.path)
    assert bare_remote.log("%H")[::-1] == shas
    for number in range(60):
        assert bare_remote.read(f"files/{number}") == f"{number}\n".encode()


def test_git_never_starts_its_own_gc(repo: ManifestRepo, bare_remote: Remote) -> None:
    # A gc started by git itself (after a fetch or a commit) could detach and outlive the
    # server; the thresholds are set so low here that it would start at once.
    git("config", "gc.auto", "1", cwd=repo.path)
    git("config", "gc.autoPackLimit", "1", cwd=repo.path)
    for number in range(5):
        commit_one(repo, number)
    repo.push(30)
    repo.sync(30)
    assert repo.pack_count() >= 5
    assert not (repo.path / ".git" / "gc.pid").exists()
    assert not (repo.path / ".git" / "gc.log").exists()


def test_a_release_that_hits_a_bug_is_refused_alone(
    repo: ManifestRepo, bare_remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug while applying one release (not the tree's fault) must not fail the batch, nor
    # every batch after it: the release is refused alone, as a server error.
    from server.errors import INTERNAL_APPLY_ERROR
    from server.models import ExportState
    from server.models import StoredRelease
    from server.repo import batch
    from server.repo import layout

    real = layout.apply_release

    def buggy(tree, release, settings):
        if release.application == "buggy":
            raise RuntimeError("a bug")
        return real(tree, release, settings)

    monkeypatch.setattr(layout, "apply_release", buggy)
    releases = [
        StoredRelease(
            id=number,
            application=app,
            version=1,
            manifests={"dev": b"a: 1\n"},
            created_at="2026-11-28T00:00:00Z",
            author_name="Jane",
            author_email="jane@example.com",
            state=ExportState.PENDING,
        )
        for number, app in enumerate(("first", "buggy", "last"), start=1)
    ]
    applied = batch.commit_each(
        repo,
        releases,
        committer=AUTHOR,
        settings=layout.LayoutSettings(),
        guard=None,
        pushed={},
    )
    assert [release_id for release_id, _ in applied.commits] == [1, 3]
    assert [(r[0], r[1]) for r in applied.refusals] == [(2, INTERNAL_APPLY_ERROR)]
    assert "RuntimeError: a bug" in applied.refusals[0][2]
    repo.push(30)
    assert bare_remote.exists("applications/first/releases/1/created_at")
    assert bare_remote.exists("applications/last/releases/1/created_at")
    assert not bare_remote.exists("applications/buggy")


def test_housekeeping_does_not_wait_for_an_export(bare_remote: Remote, tmp_path: Path) -> None:
    # A long housekeeping under the repository lock would hold up every release behind it.
    from server.config import Config
    from server.repo.exporter import Exporter

    config = Config.from_env(
        {"KUBERPULT_DATA_DIR": str(tmp_path / "data"), "KUBERPULT_GIT_URL": bare_remote.url}
    )
    config.data_dir.mkdir(parents=True)
    exporter = Exporter(config)
    repo = exporter._repo()
    repo.sync(30)
    for number in range(20):
        commit_one(repo, number)
    assert exporter.pack_count() >= 20
    with exporter.lock.held(time.monotonic() + 5) as holding:
        assert holding  # an export is running
        exporter.housekeeping()
        assert exporter.pack_count() < 5


def test_what_a_killed_git_left_in_the_pack_directory(repo: ManifestRepo) -> None:
    # A kept pack (a killed fetch leaves its .keep) is not counted: housekeeping would never
    # roll it up, and 50 of them would make it run every round for nothing. Temporary packs
    # of a killed git are removed once they are old; a fresh one may belong to a running git.
    for number in range(3):
        commit_one(repo, number)
    packs = repo.path / ".git" / "objects" / "pack"
    assert repo.pack_count() == 3
    kept = sorted(packs.glob("pack-*.pack"))[0]
    kept.with_suffix(".keep").write_text("fetch in progress\n")
    stale = packs / ".tmp-123-pack-abc.pack"
    stale.write_bytes(b"half a pack")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    fresh = packs / "tmp_pack_XYZ"
    fresh.write_bytes(b"being written")
    assert repo.pack_count() == 2
    repo.housekeeping(120)
    assert not stale.exists()
    assert fresh.exists()
    assert kept.exists()
    assert repo.pack_count() == 1
    fsck(repo.path)


def test_a_push_handed_over_while_the_worker_stops_is_still_recorded(
    repo: ManifestRepo, bare_remote: Remote, tmp_path: Path
) -> None:
    from server.repo.lock import RepoLock
    from server.repo.pusher import Pusher
    from server.store import ReplicaLease

    pusher = Pusher()
    sha = commit_one(repo, 1)
    pushing = pusher.push(repo, 30)
    pusher._thread.shutdown(wait=False)  # what interpreter exit does: no new work
    outcomes: list[object] = []
    lock = RepoLock(
        tmp_path / "repo.lock", ReplicaLease(), on_release=lambda: outcomes.append("free")
    )
    with lock.held(time.monotonic() + 5) as holding:
        assert holding
        pusher.finish_later(pushing, outcomes.append, holding)
    # Finished in the request's thread instead: recorded, then the lock let go.
    assert outcomes == [None, "free"]
    assert bare_remote.head() == sha
    with lock.held(time.monotonic()) as again:
        assert again
