"""The clone has no working tree: a batch reads the commit it starts on from git's objects
and keeps its writes in memory (BufferedTree over HeadTree). It must answer every read and
refuse every unsafe path exactly as the files on disk would, planted symlinks included.

The main test is differential: random operations run on a plain ``SafeTree`` over a directory
on disk and on the clone's tree over a commit of the same files; every answer and every
refusal must agree, and the commits fast-import makes from memory must hold what the disk
holds in the end.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from server.repo.buffered_tree import UNCHANGED
from server.repo.head_tree import HeadTree
from server.repo.manifest_repo import ManifestRepo
from server.repo.safe_tree import Parts
from server.repo.safe_tree import SafeTree
from server.repo.safe_tree import UnsafePath
from testkit.remote import Remote
from testkit.remote import git
from testkit.remote import make_bare_remote

NAMES = ["a", "b", "c", "link_dir", "file_link", "f", "g"]
AUTHOR = ("Test", "test@example.com")


def plant(root: Path, outside: Path) -> None:
    """A tree as a hostile remote could hold it: links out of the tree and inside it, files
    where directories are expected."""
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_bytes(b"f")
    (root / "a" / "c").write_bytes(b"a file where a directory could be expected")
    (root / "b" / "g").mkdir(parents=True)
    (root / "b" / "g" / "f").write_bytes(b"g")
    (root / "link_dir").symlink_to(outside)
    (root / "a" / "file_link").symlink_to(outside / "secret")
    (root / "b" / "link_dir").symlink_to("../a")


def pushed_remote(tmp_path: Path, files: Path) -> Remote:
    """A remote whose branch holds exactly the files (and symlinks) in ``files``."""
    remote = make_bare_remote(tmp_path / "remote.git")
    work = tmp_path / "work"
    shutil.copytree(files, work, symlinks=True)
    git("init", "-q", "--initial-branch=main", cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "planted", cwd=work)
    git("push", "-q", str(remote.path), "HEAD:refs/heads/main", cwd=work)
    return remote


def view(tree: SafeTree, parts: Parts = ()) -> dict[Parts, object]:
    """Every file and symlink below ``parts``, as the tree answers (empty directories, which
    git cannot hold, leave no trace)."""
    found: dict[Parts, object] = {}
    for name in tree.list(parts):
        path = (*parts, name)
        link = tree.read_symlink(path)
        if link is not None:
            found[path] = ("link", link)
        elif tree.is_dir(path):
            found.update(view(tree, path))
        else:
            found[path] = tree.read(path)
    return found


def holds_nothing(path: Path) -> bool:
    """A directory with no file or symlink anywhere below it: git cannot hold it."""
    if path.is_symlink() or not path.is_dir():
        return False
    return all(holds_nothing(child) for child in path.iterdir())


def outcome(method, *args: object):  # noqa: ANN001, ANN201 - any of the trees' methods
    try:
        return method(*args)
    except UnsafePath:
        return "refused"


def normalized(name: str, result, plain_root: Path, parts: Parts):  # noqa: ANN001, ANN201
    """The plain tree keeps directories emptied by a removal; git (and memory) do not."""
    if name == "list" and isinstance(result, list):
        return [n for n in result if not holds_nothing(plain_root.joinpath(*parts, n))]
    if name == "is_dir" and result is True and holds_nothing(plain_root.joinpath(*parts)):
        return False
    return result


def random_parts(rng: random.Random) -> Parts:
    return tuple(rng.choice(NAMES) for _ in range(rng.randint(1, 4)))


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, ManifestRepo, Path]:
    """(a plain directory, a synced clone of the same files, the directory outside)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    plain_root = tmp_path / "plain"
    plant(plain_root, outside)
    remote = pushed_remote(tmp_path, plain_root)
    repo = ManifestRepo(tmp_path / "clone", remote.url, "main", tmp_path / "home")
    repo.sync(30)
    return plain_root, repo, outside


@pytest.mark.parametrize("seed", range(40))
def test_memory_answers_and_refuses_exactly_as_the_disk_would(
    planted: tuple[Path, ManifestRepo, Path], tmp_path: Path, seed: int
) -> None:
    plain_root, repo, outside = planted
    plain, tree = SafeTree(plain_root), repo.tree
    assert view(tree) == view(plain)
    saved = tmp_path / "saved"
    shutil.copytree(plain_root, saved, symlinks=True)
    stream = repo.commits(AUTHOR)
    changed: list[str] = []
    rng = random.Random(seed)
    for step in range(60):
        parts = random_parts(rng)
        name = rng.choice(
            ["write", "write", "symlink", "remove", "read", "read_symlink", "list", "is_dir"]
        )
        args: tuple[object, ...] = (parts,)
        if name == "write":
            args = (parts, rng.choice([b"x", b"y", b"f"]))
        elif name == "symlink":
            args = (parts, random_parts(rng))
        expected = normalized(name, outcome(getattr(plain, name), *args), plain_root, parts)
        got = outcome(getattr(tree, name), *args)
        assert got == expected, f"step {step}: {name}{args}"
        if name in ("write", "symlink", "remove") and isinstance(got, str):
            changed.append(got)
        chance = rng.random()
        if chance < 0.15 and changed:
            stream.add(f"step {step}\n", AUTHOR, changed)  # what a release's commit does
            changed = []
            shutil.rmtree(saved)
            shutil.copytree(plain_root, saved, symlinks=True)
        elif chance < 0.2:
            # A refused release: back to the last commit (the plain tree from its copy).
            repo.discard_uncommitted()
            changed = []
            shutil.rmtree(plain_root)
            shutil.copytree(saved, plain_root, symlinks=True)
    if changed:
        stream.add("last\n", AUTHOR, changed)
    stream.finish()
    assert view(tree) == view(plain)
    # The commits fast-import made from memory hold exactly what the disk holds.
    assert view(HeadTree(repo.objects, repo.head()), ()) == view(plain)  # type: ignore[arg-type]
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"secret"


def test_the_clone_has_no_working_tree(bare_remote: Remote, tmp_path: Path) -> None:
    bare_remote.push_files(tmp_path, {"apps/x/manifest.yaml": "zero"}, "seed")
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "left-by-an-older-version").write_text("stale")
    repo = ManifestRepo(clone, bare_remote.url, "main", tmp_path / "home")
    repo.sync(30)
    assert [p.name for p in clone.iterdir()] == [".git"]
    assert repo.tree.read(("apps", "x", "manifest.yaml")) == b"zero"
    assert repo.tree.write(("apps", "x", "manifest.yaml"), b"one") == "apps/x/manifest.yaml"
    assert repo.tree.symlink(("envs", "dev", "version"), ("apps", "x")) == "envs/dev/version"
    stream = repo.commits(AUTHOR)
    stream.add("release\n", AUTHOR, ["apps/x/manifest.yaml", "envs/dev/version"])
    stream.finish()
    repo.push(30)
    assert [p.name for p in clone.iterdir()] == [".git"]
    assert bare_remote.read("apps/x/manifest.yaml") == b"one"
    assert bare_remote.read("envs/dev/version") == b"../../apps/x"
    assert "120000" in git("ls-tree", "main", "envs/dev/version", cwd=bare_remote.path)


def test_discard_drops_what_came_after_the_last_commit(bare_remote: Remote, tmp_path: Path) -> None:
    bare_remote.push_files(tmp_path, {"kept": "in the commit"}, "seed")
    repo = ManifestRepo(tmp_path / "clone", bare_remote.url, "main", tmp_path / "home")
    repo.sync(30)
    tree = repo.tree
    tree.write(("first",), b"1")
    stream = repo.commits(AUTHOR)
    stream.add("first\n", AUTHOR, ["first"])
    tree.write(("second",), b"2")
    tree.remove(("kept",))
    repo.discard_uncommitted()
    assert tree.read(("second",)) is None
    assert tree.read(("kept",)) == b"in the commit"
    assert tree.entry(("first",)) == b"1"
    assert tree.entry(("kept",)) is UNCHANGED
    stream.finish()
    assert view(HeadTree(repo.objects, repo.head())) == {  # type: ignore[arg-type]
        ("first",): b"1",
        ("kept",): b"in the commit",
    }


def test_a_removed_directory_is_gone_for_reads_and_commits(
    bare_remote: Remote, tmp_path: Path
) -> None:
    bare_remote.push_files(
        tmp_path, {"releases/1/manifest": "m", "releases/2/manifest": "n"}, "seed"
    )
    repo = ManifestRepo(tmp_path / "clone", bare_remote.url, "main", tmp_path / "home")
    repo.sync(30)
    tree = repo.tree
    assert tree.remove(("releases", "1")) == "releases/1"
    assert tree.read(("releases", "1", "manifest")) is None
    assert tree.entry(("releases", "1")) is None
    assert tree.entry(("releases", "1", "manifest")) is None
    assert not tree.is_dir(("releases", "1"))
    assert tree.list(("releases",)) == ["2"]
    assert tree.remove(("releases", "1")) is None
    stream = repo.commits(AUTHOR)
    stream.add("cleanup\n", AUTHOR, ["releases/1"])
    stream.finish()
    repo.push(30)
    assert bare_remote.files() == ["releases/2/manifest"]


def test_a_sync_forgets_what_memory_held(bare_remote: Remote, tmp_path: Path) -> None:
    bare_remote.push_files(tmp_path, {"a": "remote"}, "seed")
    repo = ManifestRepo(tmp_path / "clone", bare_remote.url, "main", tmp_path / "home")
    repo.sync(30)
    repo.tree.write(("a",), b"local, never pushed")
    bare_remote.push_files(tmp_path, {"a": "moved on"}, "someone else")
    repo.sync(30)
    assert repo.tree.read(("a",)) == b"moved on"


def test_a_batch_and_its_manifests_are_freed_without_the_garbage_collector(
    bare_remote: Remote, tmp_path: Path
) -> None:
    import gc
    import weakref

    bare_remote.push_files(tmp_path, {"a": "1"}, "seed")
    repo = ManifestRepo(tmp_path / "clone", bare_remote.url, "main", tmp_path / "home")
    repo.sync(30)
    repo.tree.write(("big",), b"x" * 1_000_000)
    assert repo.tree.read(("a",)) == b"1"
    gone = weakref.ref(repo)
    gc.disable()  # a cycle would keep a batch's manifests until the collector ran (P5)
    try:
        del repo
        assert gone() is None
    finally:
        gc.enable()
