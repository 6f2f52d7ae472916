"""The files of one commit, read from git's objects with ``SafeTree``'s refusals.

A tree entry that is a symlink (mode 120000), a submodule, or a file where a directory is
needed is refused exactly as ``SafeTree`` refuses one on disk. Nothing is ever followed, so no
planted link can lead out of the repository, and there is no file system for anyone to race.
"""

from __future__ import annotations

import os

from server.repo.git_objects import DUPLICATE
from server.repo.git_objects import Listing
from server.repo.git_objects import ObjectReader
from server.repo.git_objects import WrongObjectType
from server.repo.packs import BLOB
from server.repo.packs import object_name
from server.repo.safe_tree import Parts
from server.repo.safe_tree import UnsafePath
from server.repo.safe_tree import join

TREE = 0o040000
SYMLINK = 0o120000


class HeadTree:
    """The files of one commit (None: an unborn branch, no files), read-only, by path
    components, with ``SafeTree``'s refusals."""

    def __init__(self, objects: ObjectReader, commit: str | None) -> None:
        self._objects = objects
        self._root = objects.root_tree(commit) if commit else None
        # Every directory this tree has walked through, kept for its lifetime (one batch):
        # a huge planted directory is parsed once, whatever the shared cache keeps.
        self._listings: dict[str, Listing] = {}

    def read(self, parts: Parts) -> bytes | None:
        sha = self.file_sha(parts)
        if sha is None:
            return None
        try:
            return self._objects.blob(sha)
        except WrongObjectType:
            raise UnsafePath(f"{join(parts)!r} is not a regular file") from None

    def file_sha(self, parts: Parts) -> str | None:
        """The object name of the file at ``parts``; None when nothing is there.

        :raises UnsafePath: a symlink or a directory is there, or on the way.
        """
        entry = self._entry(parts)
        if entry is None:
            return None
        mode, sha = entry
        if mode == SYMLINK:
            raise UnsafePath(f"{join(parts)!r} is a symlink; refusing to read it")
        if not _is_file(mode):
            raise UnsafePath(f"{join(parts)!r} is not a regular file")
        return sha

    def read_symlink(self, parts: Parts) -> str | None:
        entry = self._entry(parts)
        if entry is None or entry[0] != SYMLINK:
            return None
        try:
            return os.fsdecode(self._objects.blob(entry[1]))
        except WrongObjectType:
            raise UnsafePath(f"{join(parts)!r} is not a symlink git can read") from None

    def list(self, parts: Parts) -> list[str]:
        listing = self.directory(parts)
        return [] if listing is None else sorted(listing)

    def is_dir(self, parts: Parts) -> bool:
        try:
            return self.directory(parts) is not None
        except UnsafePath:
            return False

    def exists(self, parts: Parts) -> bool:
        """Whether anything (file, symlink, directory) is at ``parts``."""
        return self._entry(parts) is not None

    def directory(self, parts: Parts) -> Listing | None:
        """The entries of the directory at ``parts``; None when it is missing.

        :raises UnsafePath: a symlink, file or submodule stands where a directory is needed.
        """
        if self._root is None:
            return None
        listing = self._tree(self._root, ())
        for end, name in enumerate(parts, start=1):
            entry = listing.get(name)
            if entry is None:
                return None
            if entry[0] != TREE:
                raise UnsafePath(
                    f"the manifest repository has a symlink or file at {join(parts[:end])!r} "
                    "where a directory is needed; refusing to go through it"
                )
            listing = self._tree(entry[1], parts[:end])
        return listing

    def _tree(self, sha: str, parts: Parts) -> Listing:
        listing = self._listings.get(sha)
        if listing is None:
            try:
                listing = self._objects.tree(sha)
            except WrongObjectType:
                raise UnsafePath(f"{join(parts)!r} is not a directory git can read") from None
            self._listings[sha] = listing
        return listing

    def _entry(self, parts: Parts) -> tuple[int, str] | None:
        listing = self.directory(parts[:-1])
        return None if listing is None else listing.get(parts[-1])


def blob_sha(content: bytes) -> str:
    """The name git gives a file holding ``content``."""
    return object_name(BLOB, content).hex()


def _is_file(mode: int) -> bool:
    return mode != DUPLICATE and mode & 0o170000 == 0o100000
