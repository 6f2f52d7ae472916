"""A clone that cannot fetch from a remote that answers is repaired: a ref naming an object it
lacks is dropped, and a clone that still names a fault of its own starts again from the remote.
A remote that does not answer, lacks the branch, or fails for another reason never costs the
clone; nor does git ever reach a repository above the clone while it has none."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from server.config import Config
from server.repo.exporter import Exporter
from server.repo.git import Git
from server.repo.git import GitError
from server.repo.manifest_repo import START_OVER_SECONDS
from server.repo.manifest_repo import ManifestRepo
from server.store import Store
from server.store import open_store
from testkit.remote import Remote
from testkit.remote import git
from testkit.server import Server
from testkit.server import unique_app

AUTHOR = ("kuberpult", "kuberpult@example.com")
MISSING = "1234567890" * 4


def pushed_clone(remote: Remote, where: Path) -> ManifestRepo:
    """A clone whose one commit is on the remote."""
    repo = ManifestRepo(where / "clone", remote.url, "main", where / "home")
    repo.sync(30)
    commit_and_push(repo, "one")
    return repo


def commit_and_push(repo: ManifestRepo, name: str) -> None:
    path = repo.tree.write(("files", name), f"{name}\n".encode())
    assert path
    stream = repo.commits(AUTHOR)
    stream.add(f"{name}\n", AUTHOR, [path])
    stream.finish()
    repo.push(30)


def sentinel_in(repo: ManifestRepo) -> Path:
    """A file in the clone's .git that only a new clone loses."""
    sentinel = repo.path / ".git" / "sentinel"
    sentinel.write_text("the old clone\n")
    return sentinel


def break_branch(repo: ManifestRepo) -> Path:
    """Point the clone's branch at an object it does not hold (what a lost write leaves), and
    put a sentinel in its .git that only a new clone loses."""
    (repo.path / ".git" / "refs" / "heads" / "main").write_text(MISSING + "\n")
    return sentinel_in(repo)


def test_a_branch_naming_a_missing_object_is_dropped_and_fetched_again(
    bare_remote: Remote, tmp_path: Path
) -> None:
    repo = pushed_clone(bare_remote, tmp_path)
    sentinel = break_branch(repo)
    with pytest.raises(AssertionError, match="bad object"):  # git itself cannot fetch
        git("fetch", "-q", "origin", cwd=repo.path)
    repo.sync(30)
    assert sentinel.exists()  # the clone was repaired, not made anew
    assert repo.head() == bare_remote.head()
    assert repo.tree.read(("files", "one")) == b"one\n"
    git("fsck", "--strict", "--no-dangling", cwd=repo.path)
    # And it goes on: the next commit lands on the remote's.
    commit_and_push(repo, "two")
    assert bare_remote.read("files/two") == b"two\n"


def corrupt_behind_branch(repo: ManifestRepo) -> None:
    """Two local commits (a batch whose push never happened), the older one's object file
    garbled: git reads it only when it walks past the branch's own commit, as a fetch does."""
    tree = git("rev-parse", "HEAD^{tree}", cwd=repo.path).strip()
    older = git("commit-tree", "-p", "HEAD", "-m", "older", tree, cwd=repo.path).strip()
    newer = git("commit-tree", "-p", older, "-m", "newer", tree, cwd=repo.path).strip()
    git("update-ref", "refs/heads/main", newer, cwd=repo.path)
    garbled = repo.path / ".git" / "objects" / older[:2] / older[2:]
    garbled.chmod(0o644)
    garbled.write_bytes(b"garbage")


def corrupt_clone_behind_a_moved_remote(remote: Remote, tmp: Path) -> tuple[ManifestRepo, Path]:
    """A clone with a corrupt object behind its branch, a remote that moved on (so a fetch
    walks past it), and a sentinel in the clone's .git that only a new clone loses."""
    repo = pushed_clone(remote, tmp)
    corrupt_behind_branch(repo)
    remote.push_files(tmp, {"files/three": "three\n"}, "someone else")
    return repo, sentinel_in(repo)


def test_a_clone_with_a_corrupt_object_behind_its_branch_starts_again(
    bare_remote: Remote, tmp_path: Path
) -> None:
    repo, sentinel = corrupt_clone_behind_a_moved_remote(bare_remote, tmp_path)
    repo.sync(30)
    assert not sentinel.exists()
    assert repo.head() == bare_remote.head()
    assert not list(repo.path.glob(".git-broken-*"))
    git("fsck", "--strict", "--no-dangling", cwd=repo.path)


def test_a_clone_made_anew_lately_is_not_made_anew_again(
    bare_remote: Remote, tmp_path: Path
) -> None:
    # A new clone that fails as the old one did points at the remote: cloning it again on
    # every export would fetch all of it each time. Ten minutes later it is tried again.
    repo, sentinel = corrupt_clone_behind_a_moved_remote(bare_remote, tmp_path)
    marker = repo.path / ".git" / "kuberpult-lite-started-over"
    marker.touch()  # as the last start-over leaves it
    with pytest.raises(GitError, match="is corrupt"):
        repo.sync(30)
    assert sentinel.exists()
    long_ago = time.time() - START_OVER_SECONDS - 1
    os.utime(marker, (long_ago, long_ago))
    repo.sync(30)
    assert not sentinel.exists()
    assert repo.head() == bare_remote.head()


def test_a_fetch_failing_for_another_reason_keeps_the_clone(
    bare_remote: Remote, tmp_path: Path
) -> None:
    repo = pushed_clone(bare_remote, tmp_path)
    sentinel = sentinel_in(repo)
    bare_remote.push_files(tmp_path, {"files/two": "two\n"}, "someone else")
    # The remote answers (its refs are listed) but cannot send them, as a remote that drops
    # connections under load: its pack-objects fails (read from the server's own git config).
    (tmp_path / "home" / ".gitconfig").write_text("[uploadpack]\n\tpackObjectsHook = false\n")
    with pytest.raises(GitError, match="git fetch failed"):
        repo.sync(30)
    assert sentinel.exists()
    (tmp_path / "home" / ".gitconfig").unlink()
    repo.sync(30)
    assert repo.head() == bare_remote.head()


def test_git_never_reaches_a_repository_above_a_clone_without_one(tmp_path: Path) -> None:
    git("init", "-q", str(tmp_path / "project"), cwd=tmp_path)
    clone = tmp_path / "project" / "var" / "manifests-clone"
    clone.mkdir(parents=True)
    found = Git(clone, tmp_path / "home").run(["rev-parse", "--git-dir"], check=False)
    assert found.returncode != 0, found.stdout
    assert "not a git repository" in found.stderr


def test_an_unreachable_remote_never_costs_the_clone(bare_remote: Remote, tmp_path: Path) -> None:
    repo = pushed_clone(bare_remote, tmp_path)
    sentinel = break_branch(repo)
    repo.url = str(tmp_path / "gone.git")
    with pytest.raises(GitError, match="git fetch failed"):
        repo.sync(30)
    assert sentinel.exists()


def test_a_remote_without_the_branch_never_costs_the_clone(
    bare_remote: Remote, tmp_path: Path
) -> None:
    repo = pushed_clone(bare_remote, tmp_path)
    sentinel = break_branch(repo)
    git("update-ref", "-d", "refs/heads/main", cwd=bare_remote.path)
    repo.sync(30)
    assert sentinel.exists()
    assert repo.head() is None


def test_a_remote_that_fails_new_clones_too_is_not_cloned_again_and_again(
    bare_remote: Remote, tmp_path: Path
) -> None:
    # The clone is broken beyond its refs, so it tries a new clone; the remote keeps its
    # refs but loses its objects: it answers, and the new clone's fetch fails too.
    repo, first = corrupt_clone_behind_a_moved_remote(bare_remote, tmp_path)
    objects = bare_remote.path / "objects"
    for entry in objects.iterdir():
        if entry.name not in ("info", "pack"):
            shutil.rmtree(entry)
    for pack in (objects / "pack").iterdir():
        pack.unlink()
    with pytest.raises(GitError, match="git fetch failed"):
        repo.sync(30)
    assert not first.exists()  # the first failure: a new clone was tried
    second = repo.path / ".git" / "sentinel"
    second.write_text("the new clone\n")
    with pytest.raises(GitError, match="git fetch failed"):
        repo.sync(30)
    assert second.exists()  # the new clone is kept: it is the remote that fails


def test_a_healthy_clone_is_kept(bare_remote: Remote, tmp_path: Path) -> None:
    repo = pushed_clone(bare_remote, tmp_path)
    sentinel = repo.path / ".git" / "sentinel"
    sentinel.write_text("the old clone\n")
    repo.sync(30)
    assert sentinel.exists()


def test_the_server_answers_again_after_its_clone_broke(
    start_server: Callable[..., Server], bare_remote: Remote
) -> None:
    server = start_server(bare_remote)
    first, second = unique_app(), unique_app()
    assert server.release(first, {"development": b"kind: A\n"}).status_code == 201
    server.stop()
    clone = server.data_dir / "manifests-clone" / ".git"
    (clone / "kuberpult-lite-clean").unlink()  # as a kill in the middle of a batch leaves it
    (clone / "refs" / "heads" / "main").write_text(MISSING + "\n")
    server.start()
    response = server.release(second, {"development": b"kind: B\n"})
    assert response.status_code == 201, response.text
    assert bare_remote.exists(f"applications/{first}/releases/1/environments/development")
    assert bare_remote.exists(f"applications/{second}/releases/1/environments/development")
    assert "name missing objects: dropped" in server.log()


def stored_and_pushed(tmp_path: Path, remote: Remote) -> tuple[Exporter, Store]:
    """An exporter and its store holding one release recorded as pushed (its files are not
    on ``remote``)."""
    (tmp_path / "data").mkdir()
    config = Config.from_env(
        {"KUBERPULT_DATA_DIR": str(tmp_path / "data"), "KUBERPULT_GIT_URL": remote.url}
    )
    store = open_store(config, pooled=False)
    store.migrate()
    with store.transaction():
        store.save_application("pay", "team-a")
        fields = {
            "application": "pay",
            "version": 1,
            "author_name": "Ada",
            "author_email": "ada@example.com",
            "created_at": "2026-11-28T00:00:00Z",
        }
        release = store.insert_release(fields, {"production": b"a: 1\n"})
    store.mark_pushed([(release, "a" * 40)])
    return Exporter(config), store


def test_a_clone_without_a_branch_marks_no_release_removed(
    bare_remote: Remote, tmp_path: Path
) -> None:
    # What a new clone whose fetch failed looks like: it says nothing about the remote.
    exporter, store = stored_and_pushed(tmp_path, bare_remote)
    exporter.adopt(store, time.monotonic() + 30)
    assert store.pushed_in_repository() == {("pay", 1)}


def test_a_clone_with_a_branch_marks_the_releases_it_lacks_removed(
    bare_remote: Remote, tmp_path: Path
) -> None:
    bare_remote.push_files(tmp_path, {"README.md": "manifests\n"}, "initial")
    exporter, store = stored_and_pushed(tmp_path, bare_remote)
    exporter._repo().sync(30)
    exporter.adopt(store, time.monotonic() + 30)
    assert store.pushed_in_repository() == set()


def test_a_clone_lacking_an_object_its_trees_name_starts_again(
    start_server: Callable[..., Server], bare_remote: Remote
) -> None:
    # A fetch does not notice: git trusts that it holds what its branch reaches. Only the
    # batch that reads the lost object does.
    server = start_server(bare_remote)
    app = unique_app()
    assert server.release(app, {"development": b"kind: A\n"}).status_code == 201
    packs = server.data_dir / "manifests-clone" / ".git" / "objects" / "pack"
    first = set(packs.glob("pack-*"))
    assert server.release(unique_app(), {"development": b"kind: B\n"}).status_code == 201
    server.stop()
    for lost in first:  # the first batch's pack: the app's releases directory was only there
        lost.unlink()
    server.start()
    response = server.release(app, {"development": b"kind: C\n"})
    assert response.status_code == 201, response.text
    assert bare_remote.exists(f"applications/{app}/releases/2/environments/development")
    assert "the clone lacks objects" in server.log()
