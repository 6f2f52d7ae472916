"""Reading the manifest repository from git's objects (HeadTree over git cat-file)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from server.repo import git_objects
from server.repo.git import Git
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


def hash_object(remote: Remote, content: bytes, *options: str) -> str:
    """Write ``content`` into the remote's objects as is; its name."""
    written = subprocess.run(
        ["git", "hash-object", *options, "-w", "--stdin"],
        cwd=remote.path,
        input=content,
        capture_output=True,
        check=True,
    )
    return written.stdout.decode().strip()


def crafted_commit(remote: Remote, entries: list[tuple[str, str, str]]) -> None:
    """Point the remote's branch at a commit whose root tree holds exactly ``entries``
    ((octal mode, name, sha), in this order, duplicates included): what a remote without
    ``receive.fsckObjects`` accepts from anyone with push access."""
    raw = b"".join(
        mode.encode() + b" " + name.encode() + b"\0" + bytes.fromhex(sha)
        for mode, name, sha in entries
    )
    tree = hash_object(remote, raw, "-t", "tree", "--literally")
    commit = git("commit-tree", tree, "-m", "crafted", cwd=remote.path).strip()
    git("update-ref", "refs/heads/main", commit, cwd=remote.path)


def write_blob(remote: Remote, content: bytes) -> str:
    return hash_object(remote, content)


def test_a_name_a_tree_holds_twice_is_refused(bare_remote: Remote, tmp_path: Path) -> None:
    bare_remote.push_files(tmp_path, {"environments/prod/config.json": "{}"}, "seed")
    real = git("rev-parse", "main:environments", cwd=bare_remote.path).strip()
    link = write_blob(bare_remote, b"/etc")
    # git would read the symlink's twin; fast-import would write into the symlink's entry.
    crafted_commit(bare_remote, [("120000", "environments", link), ("40000", "environments", real)])
    repo = synced(bare_remote, tmp_path)
    with pytest.raises(UnsafePath):
        repo.tree.list(("environments",))
    with pytest.raises(UnsafePath):
        repo.tree.write(("environments", "prod", "applications", "a", "x"), b"x")
    assert not repo.tree.changed


def test_an_entry_naming_an_object_of_another_type_is_refused(
    bare_remote: Remote, tmp_path: Path
) -> None:
    # git's own upload-pack will not serve such a tree; read where it was made.
    bare_remote.push_files(tmp_path, {"environments/prod/config.json": "{}"}, "seed")
    a_tree = git("rev-parse", "main:environments", cwd=bare_remote.path).strip()
    crafted_commit(
        bare_remote, [("100644", "config.json", a_tree), ("40000", "environments", a_tree)]
    )
    reader = git_objects.ObjectReader(Git(bare_remote.path, tmp_path / "home"))
    tree = HeadTree(reader, bare_remote.head())
    with pytest.raises(UnsafePath):  # not a GitError: that would fail every sync for good
        tree.read(("config.json",))
    assert tree.read(("environments", "prod", "config.json")) == b"{}"
    reader.close()


def test_a_huge_directory_is_read_once_per_batch(
    bare_remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(git_objects, "CACHE_BYTES", 20_000)
    blob = write_blob(bare_remote, b"junk")
    bare_remote.push_files(tmp_path, {"environments/prod/config.json": "{}"}, "seed")
    environments = git("rev-parse", "main:environments", cwd=bare_remote.path).strip()
    junk = [("100644", f"junk-{n:05}", blob) for n in range(2000)]  # a 60 KB root tree
    crafted_commit(bare_remote, [("40000", "environments", environments), *junk])
    repo = synced(bare_remote, tmp_path)
    reader = git_objects.ObjectReader(repo.git)
    asked: list[str] = []
    fetch = reader._object  # noqa: SLF001 - counting what reaches git

    def counted(name: str) -> tuple[bytes, bytes]:
        asked.append(name)
        return fetch(name)

    monkeypatch.setattr(reader, "_object", counted)
    tree = HeadTree(reader, repo.head())
    for _ in range(50):
        assert tree.read(("environments", "prod", "config.json")) == b"{}"
        assert tree.is_dir(("environments", "prod"))
    assert len(asked) <= 5  # the commit, three trees, one file: not 100 roots
    reader.close()
