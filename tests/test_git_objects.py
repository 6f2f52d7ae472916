"""Reading the manifest repository from git's objects (HeadTree over git cat-file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.repo import git_objects
from server.repo.head_tree import HeadTree
from server.repo.manifest_repo import ManifestRepo
from server.repo.safe_tree import UnsafePath
from testkit.remote import Remote
from testkit.remote import git


def synced(remote: Remote, tmp_path: Path) -> ManifestRepo:
    repo = ManifestRepo(tmp_path / "clone", remote.url, "main", tmp_path / "home")
    repo.sync(30)
    return repo


def test_a_submodule_is_refused_like_a_symlink(bare_remote: Remote, tmp_path: Path) -> None:
    work = tmp_path / "work"
    git("init", "-q", "--initial-branch=main", str(work), cwd=tmp_path)
    (work / "file").write_text("x")
    git("add", "file", cwd=work)
    git("commit", "-q", "-m", "one", cwd=work)
    sha = git("rev-parse", "HEAD", cwd=work).strip()
    git("update-index", "--add", "--cacheinfo", f"160000,{sha},environments", cwd=work)
    git("commit", "-q", "-m", "a submodule where a directory is expected", cwd=work)
    git("push", "-q", bare_remote.url, "HEAD:refs/heads/main", cwd=work)
    repo = synced(bare_remote, tmp_path)
    with pytest.raises(UnsafePath):
        repo.tree.list(("environments",))
    with pytest.raises(UnsafePath):
        repo.tree.read(("environments",))
    assert not repo.tree.is_dir(("environments",))
    assert repo.tree.read(("file",)) == b"x"


def test_the_cache_stays_within_its_budget(
    bare_remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(git_objects, "CACHE_BYTES", 2000)
    files = {f"apps/app-{n}/releases/{n}/manifest": f"{n}" for n in range(60)}
    bare_remote.push_files(tmp_path, files, "many directories")
    repo = synced(bare_remote, tmp_path)
    reader = git_objects.ObjectReader(repo.git)
    tree = HeadTree(reader, repo.head())
    for n in range(60):
        assert tree.read(("apps", f"app-{n}", "releases", str(n), "manifest")) == f"{n}".encode()
    assert reader._cached_bytes <= 2000  # noqa: SLF001 - the budget is what is tested
    reader.close()


def test_a_reader_whose_git_died_starts_another(bare_remote: Remote, tmp_path: Path) -> None:
    bare_remote.push_files(tmp_path, {"a": "1", "b": "2"}, "seed")
    repo = synced(bare_remote, tmp_path)
    reader = git_objects.ObjectReader(repo.git)
    assert HeadTree(reader, repo.head()).read(("a",)) == b"1"
    process = reader._process  # noqa: SLF001 - killed from outside, as the OOM killer would
    assert process is not None
    process.kill()
    process.wait()
    assert HeadTree(reader, repo.head()).read(("b",)) == b"2"
    reader.close()


def test_objects_made_after_the_reader_started_are_found(
    bare_remote: Remote, tmp_path: Path
) -> None:
    bare_remote.push_files(tmp_path, {"a": "1"}, "seed")
    repo = synced(bare_remote, tmp_path)
    assert repo.tree.read(("a",)) == b"1"  # the reader runs from here on
    repo.tree.write(("a",), b"2")
    stream = repo.commits(("Bot", "bot@example.com"))
    stream.add("two\n", ("Bot", "bot@example.com"), ["a"])
    stream.finish()  # a new pack, written by fast-import
    assert HeadTree(repo.objects, repo.head()).read(("a",)) == b"2"
