"""A batch's writes stay in memory until the push (BufferedTree): it must answer every read
and refuse every unsafe path exactly as the files on disk would, planted symlinks included.

The main test is differential: random operations run on a plain ``SafeTree`` (which writes
to disk at once) and on a ``BufferedTree`` over an identical copy; every answer and every
refusal must agree, and after ``write_out`` both disks must hold the same files.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from server.repo.buffered_tree import ON_DISK
from server.repo.buffered_tree import BufferedTree
from server.repo.safe_tree import Parts
from server.repo.safe_tree import SafeTree
from server.repo.safe_tree import UnsafePath

NAMES = ["a", "b", "c", "link_dir", "file_link", "f", "g"]


def plant(root: Path, outside: Path) -> None:
    """A tree as a hostile remote could hold it: links out of the tree, files where
    directories are expected."""
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_bytes(b"f")
    (root / "a" / "c").write_bytes(b"a file where a directory could be expected")
    (root / "b" / "g").mkdir(parents=True)
    (root / "b" / "g" / "f").write_bytes(b"g")
    (root / "link_dir").symlink_to(outside)
    (root / "a" / "file_link").symlink_to(outside / "secret")
    (root / "b" / "link_dir").symlink_to("../a")


def snapshot(root: Path) -> dict[str, object]:
    """Every file and symlink under ``root`` (empty directories are not in git either)."""
    found: dict[str, object] = {}
    for directory, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]:
            path = Path(directory) / name
            relative = str(path.relative_to(root))
            found[relative] = (
                ("link", os.readlink(path)) if path.is_symlink() else path.read_bytes()
            )
    return found


def holds_nothing(path: Path) -> bool:
    """A directory with no file or symlink anywhere below it: git cannot hold it."""
    if path.is_symlink() or not path.is_dir():
        return False
    return all(holds_nothing(child) for child in path.iterdir())


def outcome(method, *args: object):  # noqa: ANN001, ANN201 - any of the trees' methods
    try:
        result = method(*args)
    except UnsafePath:
        return "refused"
    return result


def random_parts(rng: random.Random) -> Parts:
    return tuple(rng.choice(NAMES) for _ in range(rng.randint(1, 4)))


def normalized(name: str, result, plain_root: Path, parts: Parts):  # noqa: ANN001, ANN201
    """The plain tree keeps directories emptied by a removal; git (and memory) do not."""
    if name == "list" and isinstance(result, list):
        return [n for n in result if not holds_nothing(plain_root.joinpath(*parts, n))]
    if name == "is_dir" and result is True and holds_nothing(plain_root.joinpath(*parts)):
        return False
    return result


@pytest.mark.parametrize("seed", range(60))
def test_memory_answers_and_refuses_exactly_as_the_disk_would(tmp_path: Path, seed: int) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    plain_root, buffered_root = tmp_path / "plain", tmp_path / "buffered"
    plant(plain_root, outside)
    shutil.copytree(plain_root, buffered_root, symlinks=True)
    plain, buffered = SafeTree(plain_root), BufferedTree(SafeTree(buffered_root))
    before = snapshot(buffered_root)
    saved = tmp_path / "saved"
    shutil.copytree(plain_root, saved, symlinks=True)
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
        got = outcome(getattr(buffered, name), *args)
        assert got == expected, f"step {step}: {name}{args}"
        chance = rng.random()
        if chance < 0.1:
            buffered.commit()
            shutil.rmtree(saved, ignore_errors=True)
            shutil.copytree(plain_root, saved, symlinks=True)
        elif chance < 0.15:
            # A refused release: back to the last commit (the plain tree from its copy).
            buffered.discard()
            shutil.rmtree(plain_root)
            shutil.copytree(saved, plain_root, symlinks=True)
    # Nothing reached the disk before write_out, and everything did after it.
    assert snapshot(buffered_root) == before
    buffered.commit()
    assert buffered.write_out()
    assert snapshot(buffered_root) == snapshot(plain_root)
    assert (outside / "secret").read_bytes() == b"secret"
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


def test_nothing_reaches_the_disk_before_write_out(tmp_path: Path) -> None:
    tree = BufferedTree(SafeTree(tmp_path))
    assert tree.write(("apps", "x", "manifest.yaml"), b"one") == "apps/x/manifest.yaml"
    assert tree.symlink(("envs", "dev", "version"), ("apps", "x")) == "envs/dev/version"
    assert tree.read(("apps", "x", "manifest.yaml")) == b"one"
    assert tree.list(()) == ["apps", "envs"]
    assert list(tmp_path.iterdir()) == []
    tree.commit()
    assert tree.write_out()
    assert (tmp_path / "apps" / "x" / "manifest.yaml").read_bytes() == b"one"
    assert os.readlink(tmp_path / "envs" / "dev" / "version") == "../../apps/x"


def test_discard_drops_what_came_after_the_last_commit(tmp_path: Path) -> None:
    (tmp_path / "kept").write_bytes(b"on disk")
    tree = BufferedTree(SafeTree(tmp_path))
    tree.write(("first",), b"1")
    tree.commit()
    tree.write(("second",), b"2")
    tree.remove(("kept",))
    tree.discard()
    assert tree.read(("second",)) is None
    assert tree.read(("kept",)) == b"on disk"
    assert tree.entry(("first",)) == b"1"
    assert tree.entry(("kept",)) is ON_DISK
    tree.write(("third",), b"3")  # never committed: write_out drops it
    assert tree.write_out()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first", "kept"]


def test_a_removed_directory_is_gone_for_reads_and_commits(tmp_path: Path) -> None:
    (tmp_path / "releases" / "1").mkdir(parents=True)
    (tmp_path / "releases" / "1" / "manifest").write_bytes(b"m")
    tree = BufferedTree(SafeTree(tmp_path))
    assert tree.remove(("releases", "1")) == "releases/1"
    assert tree.read(("releases", "1", "manifest")) is None
    assert tree.entry(("releases", "1")) is None
    assert tree.entry(("releases", "1", "manifest")) is None
    assert not tree.is_dir(("releases", "1"))
    assert tree.list(("releases",)) == []
    assert tree.remove(("releases", "1")) is None


def test_a_write_out_that_fails_leaves_the_clone_to_be_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = BufferedTree(SafeTree(tmp_path))
    tree.write(("a",), b"1")
    tree.commit()

    def full_disk(self: SafeTree, parts: Parts, content: bytes) -> str | None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SafeTree, "write", full_disk)
    assert not tree.write_out()
    assert not tree.write_out()  # still untrusted, though nothing is left to write
    tree.forget()  # a sync resets the clone
    assert tree.write_out()
