"""The trees of a batch's commits, edited in memory from the commit the batch starts on.

Each commit of a batch changes a few paths; only the directories on those paths get new tree
objects, written bottom-up into the batch's pack. Everything else keeps its object name.
Directories left empty are dropped, as git never stores one; a file or symlink written where
a directory was replaces it, and the other way round, as ``git fast-import`` does.
"""

from __future__ import annotations

import os

from server.repo.git_objects import DUPLICATE
from server.repo.git_objects import Listing
from server.repo.git_objects import ObjectReader
from server.repo.head_tree import TREE
from server.repo.packs import TREE as TREE_OBJECT
from server.repo.packs import PackBuilder
from server.repo.safe_tree import Parts


class UnsupportedTree(Exception):
    """A directory to change holds something this editor does not rewrite faithfully (a name
    twice: git's fsck refuses such trees, yet a remote that does not check may hold one)."""


class TreeEditor:
    """Edits from one root tree (None: an unborn branch); ``write`` makes the next root."""

    def __init__(self, objects: ObjectReader, root: str | None, pack: PackBuilder) -> None:
        self._objects = objects
        self._pack = pack
        self._root = root
        # Directories loaded (and maybe changed), by path; copies, never the reader's cache.
        self._directories: dict[Parts, dict[str, tuple[int, str]]] = {
            (): self._load(root) if root else {}
        }
        self._changed: set[Parts] = set()
        #: The trees written so far, as (name, entries, size): the reader may keep them once
        #: they are on disk (see ``ObjectReader.remember_tree``).
        self.written: list[tuple[str, Listing, int]] = []

    def set(self, parts: Parts, mode: int, sha: str) -> None:
        """Put a file or symlink (``mode``) with object ``sha`` at ``parts``."""
        directory = self._directory(parts[:-1], create=True)
        assert directory is not None  # noqa: S101 - create=True always gives one
        directory[parts[-1]] = (mode, sha)
        self._forget_below(parts)
        self._touch(parts[:-1])

    def delete(self, parts: Parts) -> None:
        """Remove whatever is at ``parts`` (a whole directory too); nothing there is fine."""
        directory = self._directory(parts[:-1], create=False)
        if directory is None or directory.pop(parts[-1], None) is None:
            return
        self._forget_below(parts)
        self._touch(parts[:-1])

    def write(self) -> str:
        """Add the changed trees to the pack; return the name of the root tree."""
        if not self._changed and self._root is not None:
            return self._root
        for parts in sorted(self._changed, key=len, reverse=True):
            listing = self._directories.get(parts)
            if listing is None or not parts:
                continue
            parent = self._directories[parts[:-1]]
            if listing:
                parent[parts[-1]] = (TREE, self._add(listing))
            else:
                parent.pop(parts[-1], None)
                del self._directories[parts]
        self._root = self._add(self._directories[()])
        self._changed.clear()
        return self._root

    def _add(self, listing: dict[str, tuple[int, str]]) -> str:
        raw = serialize(listing)
        sha = self._pack.add(TREE_OBJECT, raw)
        self.written.append((sha, dict(listing), len(raw)))
        return sha

    def _directory(self, parts: Parts, *, create: bool) -> dict[str, tuple[int, str]] | None:
        found = self._directories.get(parts)
        if found is not None:
            return found
        parent = self._directory(parts[:-1], create=create)
        if parent is None:
            return None
        entry = parent.get(parts[-1])
        if entry is not None and entry[0] == TREE:
            found = self._load(entry[1])
        elif create:
            found = {}  # nothing there, or a file that the directory replaces
        else:
            return None
        self._directories[parts] = found
        return found

    def _load(self, sha: str) -> dict[str, tuple[int, str]]:
        listing: Listing = self._objects.tree(sha)
        if any(mode == DUPLICATE for mode, _ in listing.values()):
            raise UnsupportedTree(f"tree {sha} holds a name twice")
        return dict(listing)

    def _forget_below(self, parts: Parts) -> None:
        """What was loaded under ``parts`` is gone with what stood there."""
        depth = len(parts)
        for loaded in [p for p in self._directories if len(p) >= depth and p[:depth] == parts]:
            del self._directories[loaded]

    def _touch(self, parts: Parts) -> None:
        for end in range(len(parts) + 1):
            self._changed.add(parts[:end])


def serialize(listing: dict[str, tuple[int, str]]) -> bytes:
    """A tree object's content: entries in git's order (a directory sorts as if its name
    ended in '/'), each ``<octal mode> <name>\\0<20-byte sha>``."""

    def order(name: str) -> bytes:
        return os.fsencode(name) + (b"/" if listing[name][0] == TREE else b"")

    return b"".join(
        b"%o %s\0" % (listing[name][0], os.fsencode(name)) + bytes.fromhex(listing[name][1])
        for name in sorted(listing, key=order)
    )
