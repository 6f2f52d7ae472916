"""A clone that cannot fetch from a remote that answers starts again from the remote; a remote
that does not answer, or lacks the branch, never costs the clone."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from server.repo.git import GitError
from server.repo.manifest_repo import START_OVER_SECONDS
from server.repo.manifest_repo import ManifestRepo
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


def break_branch(repo: ManifestRepo) -> Path:
    """Point the clone's branch at an object it does not hold (what a lost write leaves), and
    put a sentinel in its .git that only a new clone loses."""
    (repo.path / ".git" / "refs" / "heads" / "main").write_text(MISSING + "\n")
    sentinel = repo.path / ".git" / "sentinel"
    sentinel.write_text("the old clone\n")
    return sentinel


def test_a_branch_naming_a_missing_object_makes_the_clone_start_again(
    bare_remote: Remote, tmp_path: Path
) -> None:
    repo = pushed_clone(bare_remote, tmp_path)
    sentinel = break_branch(repo)
    with pytest.raises(AssertionError, match="bad object"):  # git itself cannot fetch
        git("fetch", "-q", "origin", cwd=repo.path)
    repo.sync(30)
    assert not sentinel.exists()
    assert repo.head() == bare_remote.head()
    assert repo.tree.read(("files", "one")) == b"one\n"
    assert not list(repo.path.glob(".git-broken-*"))
    git("fsck", "--strict", "--no-dangling", cwd=repo.path)
    # And it goes on: the next commit lands on the remote's.
    commit_and_push(repo, "two")
    assert bare_remote.read("files/two") == b"two\n"


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
    repo = pushed_clone(bare_remote, tmp_path)
    first = break_branch(repo)
    # The remote keeps its refs but loses its objects: it answers, and no fetch can succeed.
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
    assert second.exists()  # a new clone failed the same way: not again so soon
    marker = repo.path / ".git" / "kuberpult-lite-started-over"
    long_ago = time.time() - START_OVER_SECONDS - 1
    os.utime(marker, (long_ago, long_ago))
    with pytest.raises(GitError, match="git fetch failed"):
        repo.sync(30)
    assert not second.exists()  # ... but once in a while


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
    assert "starts again from the remote" in server.log()
