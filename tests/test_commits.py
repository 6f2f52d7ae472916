"""A batch's commits, written as one pack by this process: the same commits, byte for byte,
as ``git fast-import`` makes from the same changes, and a pack git itself accepts."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from server.repo.commits import CommitStream
from server.repo.git import GitError
from server.repo.git_objects import _parse_tree as parse_tree
from server.repo.manifest_repo import ManifestRepo
from server.repo.safe_tree import UnsafePath
from server.repo.tree_edit import UnsupportedTree
from testkit.remote import Remote
from testkit.remote import git

AUTHOR = ("Jane", "jane@example.com")
COMMITTER = ("Bot", "bot@example.com")
NOW = 1_700_000_000


def clone(remote: Remote, where: Path) -> ManifestRepo:
    repo = ManifestRepo(where / "clone", remote.url, "main", where / "home")
    repo.sync(30)
    return repo


def random_batch(seed: int) -> list[list[Callable[[ManifestRepo], str | None]]]:
    """Commits of random writes, symlinks and removals (whole directories too), over few
    names so that they meet: a file where a directory was, a directory emptied, and so on."""
    chance = random.Random(seed)
    names = ["a", "a.b", "c d", "e"]

    def parts() -> tuple[str, ...]:
        return tuple(chance.choice(names) for _ in range(chance.randint(1, 3)))

    def operation() -> Callable[[ManifestRepo], str | None]:
        where, kind = parts(), chance.random()
        content = chance.randbytes(chance.randint(0, 300))
        target = parts()
        if kind < 0.55:
            return lambda repo: repo.tree.write(where, content)
        if kind < 0.7:
            return lambda repo: repo.tree.symlink(where, target)
        return lambda repo: repo.tree.remove(where)

    return [[operation() for _ in range(chance.randint(1, 8))] for _ in range(chance.randint(1, 6))]


def make(
    repo: ManifestRepo, batch: list[list[Callable[[ManifestRepo], str | None]]], *, pack: bool
) -> list[str]:
    stream = repo.commits(COMMITTER)
    stream.now = NOW
    for number, operations in enumerate(batch):
        paths = []
        for operation in operations:
            try:
                path = operation(repo)
            except UnsafePath:
                continue  # refused the same way on both clones
            if path:
                paths.append(path)
        if paths:
            stream.add(f"commit {number}\n", AUTHOR, paths)
    if pack:
        return stream.finish()
    return stream._by_fast_import() if stream.count else []


def trees_of(repo: ManifestRepo, commit: str) -> list[str]:
    """The names of every tree in ``commit``, its root first."""
    listed = git(
        "ls-tree", "-r", "-t", "--format=%(objecttype) %(objectname)", commit, cwd=repo.path
    )
    return [git("rev-parse", f"{commit}^{{tree}}", cwd=repo.path).strip()] + [
        line.split()[1] for line in listed.splitlines() if line.startswith("tree ")
    ]


@pytest.mark.parametrize("seed", range(40))
def test_the_pack_holds_the_commits_fast_import_makes(
    seed: int, bare_remote: Remote, tmp_path: Path
) -> None:
    bare_remote.push_files(tmp_path, {"a/b/c": "seed\n", "e/keep": "kept\n"}, "seed")
    ours, theirs = clone(bare_remote, tmp_path / "ours"), clone(bare_remote, tmp_path / "theirs")
    batch = random_batch(seed)
    made = make(ours, batch, pack=True)
    assert made == make(theirs, batch, pack=False)
    if made:
        assert git("rev-parse", "main", cwd=ours.path).strip() == made[-1]
    git("fsck", "--strict", "--no-dangling", cwd=ours.path)
    # The trees the batch wrote are kept in the reader for the next batch: as git reads them.
    for commit in made:
        for sha in trees_of(ours, commit):
            raw = subprocess.run(
                ["git", "cat-file", "tree", sha], cwd=ours.path, capture_output=True, check=True
            ).stdout
            assert ours.objects.tree(sha) == parse_tree(raw)
    ours.push(30)
    assert bare_remote.head() == (made[-1] if made else theirs.head())


def test_an_unborn_branch_gets_its_first_commit(bare_remote: Remote, tmp_path: Path) -> None:
    repo = clone(bare_remote, tmp_path)
    path = repo.tree.write(("environments", "dev", "config.json"), b"{}\n")
    stream = repo.commits(COMMITTER)
    stream.add("first\n", AUTHOR, [path or ""])
    (sha,) = stream.finish()
    git("fsck", "--strict", "--no-dangling", cwd=repo.path)
    assert git("log", "--format=%P|%an|%s", "main", cwd=repo.path).strip() == "|Jane|first"
    assert git("show", "main:environments/dev/config.json", cwd=repo.path) == "{}\n"
    assert repo.head() == sha


def test_the_branch_moves_only_from_the_commit_the_batch_started_on(
    bare_remote: Remote, tmp_path: Path
) -> None:
    bare_remote.push_files(tmp_path, {"a": "1\n"}, "seed")
    repo = clone(bare_remote, tmp_path)
    stream = repo.commits(COMMITTER)
    stream.add("ours\n", AUTHOR, [repo.tree.write(("a",), b"2\n") or ""])
    before = repo.head()
    # Something else moved the branch meanwhile (it never should: the lock is ours).
    other = git("commit-tree", f"{before}^{{tree}}", "-p", str(before), "-m", "x", cwd=repo.path)
    git("update-ref", "refs/heads/main", other.strip(), cwd=repo.path)
    with pytest.raises(GitError, match="expected"):
        stream.finish()
    assert git("rev-parse", "main", cwd=repo.path).strip() == other.strip()


def test_a_directory_holding_a_name_twice_is_left_to_fast_import(
    bare_remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_git_objects import crafted_commit
    from tests.test_git_objects import write_blob

    blob = write_blob(bare_remote, b"x\n")
    crafted_commit(bare_remote, [("100644", "twice", blob), ("100644", "twice", blob)])
    repo = clone(bare_remote, tmp_path)
    used: list[str] = []
    by_fast_import = CommitStream._by_fast_import

    def spy(stream: CommitStream) -> list[str]:
        used.append("fast-import")
        return by_fast_import(stream)

    monkeypatch.setattr(CommitStream, "_by_fast_import", spy)
    stream = repo.commits(COMMITTER)
    stream.add("next\n", AUTHOR, [repo.tree.write(("other",), b"y\n") or ""])
    (sha,) = stream.finish()
    assert used == ["fast-import"]
    assert git("show", f"{sha}:other", cwd=repo.path) == "y\n"
    with pytest.raises(UnsupportedTree):
        from server.repo.packs import PackBuilder
        from server.repo.tree_edit import TreeEditor

        TreeEditor(repo.objects, repo.objects.root_tree(sha), PackBuilder())


def test_a_branch_locked_by_someone_else_is_not_moved(bare_remote: Remote, tmp_path: Path) -> None:
    bare_remote.push_files(tmp_path, {"a": "1\n"}, "seed")
    repo = clone(bare_remote, tmp_path)
    before = repo.head()
    held = repo.path / ".git" / "refs" / "heads" / "main.lock"
    held.write_text("someone else's\n")
    stream = repo.commits(COMMITTER)
    stream.add("ours\n", AUTHOR, [repo.tree.write(("a",), b"2\n") or ""])
    with pytest.raises(GitError, match="cannot lock"):
        stream.finish()
    assert held.read_text() == "someone else's\n"  # theirs to remove, not ours
    held.unlink()
    assert git("rev-parse", "main", cwd=repo.path).strip() == before


def test_a_packed_branch_is_moved_like_a_loose_one(bare_remote: Remote, tmp_path: Path) -> None:
    bare_remote.push_files(tmp_path, {"a": "1\n"}, "seed")
    repo = clone(bare_remote, tmp_path)
    git("pack-refs", "--all", cwd=repo.path)
    assert not (repo.path / ".git" / "refs" / "heads" / "main").exists()
    stream = repo.commits(COMMITTER)
    stream.add("ours\n", AUTHOR, [repo.tree.write(("a",), b"2\n") or ""])
    (sha,) = stream.finish()
    assert git("rev-parse", "main", cwd=repo.path).strip() == sha
    assert git("rev-parse", "main~1", cwd=repo.path).strip() == bare_remote.head()
    assert not (repo.path / ".git" / "refs" / "heads" / "main.lock").exists()
