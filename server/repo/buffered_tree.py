"""The tree a batch works on: a commit's files (read from git's objects) plus the batch's
changes, held in memory.

Writing a release's files into a working tree cost more than anything else in a batch: a
handful of ``mkdir`` and file creations per release, each waiting on the file system's
journal, with the repository lock held. So the clone has no working tree at all: reads come
from the commit the batch started on (``HeadTree``), writes stay in memory, and
``CommitStream`` takes each commit's files from here. The rules are ``SafeTree``'s: a path is
refused the moment it would go through a symlink or a file, in the commit or in memory.

Changes are kept in two layers: what the commits added so far hold (``commit``), and what came
after (dropped by ``discard`` when a release is refused).

Over 250 lines: every one of ``SafeTree``'s operations again, over memory and the commit
together; ``tests/test_buffered_tree.py`` runs both side by side and needs the same answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from server.repo.head_tree import HeadTree
from server.repo.head_tree import blob_sha
from server.repo.safe_tree import Parts
from server.repo.safe_tree import SafeTree
from server.repo.safe_tree import UnsafePath
from server.repo.safe_tree import check_parts
from server.repo.safe_tree import join


@dataclass(frozen=True)
class Link:
    """A symlink to ``target`` (repo-relative), holding ``text``."""

    target: Parts
    text: str


class _Gone:
    """Removed: whatever the commit holds here (a file, or a whole directory) is gone."""


GONE: Final = _Gone()
#: What a path holds in memory.
Entry = bytes | Link | _Gone


class _Unchanged:
    """Nothing in memory says anything about this path: the commit holds it as it is."""


UNCHANGED: Final = _Unchanged()


class BufferedTree(SafeTree):
    """A ``SafeTree`` over a commit's files whose writes stay in memory.

    ``base`` gives the commit's files (``HeadTree``); it is asked once, at the first read,
    and again after ``forget``.
    """

    def __init__(self, root: Path, base: Callable[[], HeadTree]) -> None:
        super().__init__(root)
        self._make_base = base
        self._base: HeadTree | None = None
        self._entries: dict[Parts, Entry] = {}
        self._committed: dict[Parts, Entry] = {}

    @property
    def base(self) -> HeadTree:
        if self._base is None:
            self._base = self._make_base()
        return self._base

    # -- the two layers ------------------------------------------------------------------

    def commit(self) -> None:
        """What the tree holds now belongs to a commit (``discard`` goes back to here)."""
        self._committed = dict(self._entries)

    def discard(self) -> None:
        """Drop every change since the last ``commit``."""
        self._entries = dict(self._committed)

    def forget(self) -> None:
        """The branch was reset (a sync): nothing in memory holds any more, and the files
        are the new commit's."""
        self._entries, self._committed = {}, {}
        self._base = None

    @property
    def changed(self) -> bool:
        """Whether memory holds changes (committed or not)."""
        return bool(self._entries)

    def entry(self, parts: Parts) -> bytes | str | None | _Unchanged:
        """What a commit records at ``parts``: a file's bytes, a symlink's text, None when
        it is gone, ``UNCHANGED`` when memory holds nothing about it."""
        entry = self._entries.get(parts)
        if isinstance(entry, bytes):
            return entry
        if isinstance(entry, Link):
            return entry.text
        if entry is GONE or self._hidden(parts):
            return None
        return UNCHANGED

    # -- SafeTree's interface ------------------------------------------------------------

    def read(self, parts: Parts) -> bytes | None:
        check_parts(parts)
        entry = self._state(parts)
        if entry is None and not self._live_under(parts):
            return self.base.read(parts)
        if isinstance(entry, Link):
            raise UnsafePath(f"{join(parts)!r} is a symlink; refusing to read it")
        if not isinstance(entry, bytes):
            if self._live_under(parts):
                raise UnsafePath(f"{join(parts)!r} is not a regular file")
            return None
        return entry

    def write(self, parts: Parts, content: bytes) -> str | None:
        check_parts(parts)
        if self._state(parts) is None and not self._live_under(parts):
            # Unchanged is decided by object name: a large manifest is not read back to be
            # compared. file_sha refuses a symlink or a directory at ``parts``, as writing would.
            if self.base.file_sha(parts) == blob_sha(content):
                return None
        elif self.read(parts) == content:  # refuses what file_sha would
            return None
        self._check_directories_above(parts)
        self._entries[parts] = bytes(content)
        return join(parts)

    def symlink(self, parts: Parts, target: Parts) -> str | None:
        text = self.link_text(parts, target)
        self._check_directories_above(parts)
        if self.read_symlink(parts) == text:
            return None
        self.remove(parts)
        self._entries[parts] = Link(target, text)
        return join(parts)

    def read_symlink(self, parts: Parts) -> str | None:
        check_parts(parts)
        entry = self._state(parts)
        if entry is None:
            return self.base.read_symlink(parts)
        return entry.text if isinstance(entry, Link) else None

    def list(self, parts: Parts) -> list[str]:
        if parts:
            check_parts(parts)
        entry = self._state(parts) if parts else None
        if isinstance(entry, bytes | Link):
            raise UnsafePath(f"{join(parts)!r} is a file or symlink where a directory is needed")
        names = set(self.base.list(parts)) if entry is None else set()
        depth = len(parts)
        for path, held in self._entries.items():
            if len(path) > depth and path[:depth] == parts:
                if not isinstance(held, _Gone):
                    names.add(path[depth])
                elif len(path) == depth + 1 and not self._live_under(path):
                    names.discard(path[depth])
        return sorted(names)

    def is_dir(self, parts: Parts) -> bool:
        check_parts(parts)
        try:
            entry = self._state(parts)
        except UnsafePath:
            return False
        if isinstance(entry, bytes | Link):
            return False
        if self._live_under(parts):
            return True
        return entry is None and self.base.is_dir(parts)

    def remove(self, parts: Parts) -> str | None:
        check_parts(parts)
        self._check_directories_above(parts)
        entry = self._state(parts)
        existed = self._live_under(parts) or (
            isinstance(entry, bytes | Link) or (entry is None and self.base.exists(parts))
        )
        if not existed:
            return None
        depth = len(parts)
        for path in [path for path in self._entries if path[:depth] == parts]:
            del self._entries[path]
        self._entries[parts] = GONE
        return join(parts)

    # -- how memory and the commit combine -------------------------------------------------

    def _state(self, parts: Parts) -> Entry | None:
        """What memory says of ``parts``: its entry; ``GONE`` when a directory above it was
        removed; None when memory says nothing (the commit decides).

        :raises UnsafePath: a file or symlink in memory stands where a directory is needed.
        """
        entry = self._entries.get(parts)
        if entry is not None:
            return entry
        for end in range(len(parts) - 1, 0, -1):
            above = self._entries.get(parts[:end])
            if above is None:
                continue
            if isinstance(above, _Gone):
                return GONE
            raise UnsafePath(
                f"the manifest repository has a symlink or file at {join(parts[:end])!r} "
                "where a directory is needed; refusing to go through it"
            )
        return None

    def _hidden(self, parts: Parts) -> bool:
        """Whether a directory above ``parts`` was removed."""
        return any(self._entries.get(parts[:end]) is GONE for end in range(1, len(parts)))

    def _live_under(self, parts: Parts) -> bool:
        """Whether memory holds a file or symlink somewhere below ``parts``."""
        depth = len(parts)
        return any(
            len(path) > depth and path[:depth] == parts and not isinstance(held, _Gone)
            for path, held in self._entries.items()
        )

    def _check_directories_above(self, parts: Parts) -> None:
        """Refuse ``parts`` where writing it would go through a file or a symlink: one in
        memory, or one in the commit above the first directory this batch removed."""
        check_parts(parts)
        self._state(parts)
        above = parts[:-1]
        for end in range(1, len(above) + 1):
            if self._entries.get(above[:end]) is GONE:
                above = above[: end - 1]
                break
        if above:
            self.base.directory(above)
