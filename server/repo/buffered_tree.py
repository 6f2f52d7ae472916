"""The working tree as a batch sees it: the files on disk plus the changes not yet written.

Writing a release's files into the clone cost more than anything else in a batch: a handful
of ``mkdir`` and file creations per release, each waiting on the file system's journal, with
the repository lock held. So a batch writes into memory instead. ``CommitStream`` takes each
commit's files from here, and the files reach the disk (``write_out``) while the push runs,
before anyone else may use the clone. The rules are ``SafeTree``'s: a path is refused the
moment it would go through a symlink or a file, on disk or in memory, exactly as if it had
been written.

Changes are kept in two layers: what the commits added so far hold (``commit``), and what came
after (dropped by ``discard`` when a release is refused). A clone whose changes could not be
written out is never marked clean, so the next batch resyncs it from the remote.

Over 250 lines: every one of ``SafeTree``'s operations again, over memory and disk together;
``tests/test_buffered_tree.py`` runs both side by side and needs the same answers.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from server.repo.safe_tree import Parts
from server.repo.safe_tree import SafeTree
from server.repo.safe_tree import UnsafePath
from server.repo.safe_tree import check_parts
from server.repo.safe_tree import join

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Link:
    """A symlink to ``target`` (repo-relative), holding ``text``."""

    target: Parts
    text: str


class _Gone:
    """Removed: whatever the disk holds here (a file, or a whole directory) is gone."""


GONE: Final = _Gone()
#: What a path holds in memory.
Entry = bytes | Link | _Gone


class _OnDisk:
    """Nothing in memory says anything about this path: the disk holds it as it is."""


ON_DISK: Final = _OnDisk()


class BufferedTree(SafeTree):
    """A ``SafeTree`` whose writes stay in memory until ``write_out``."""

    def __init__(self, root: SafeTree) -> None:
        super().__init__(root.root)
        self._disk = root
        self._entries: dict[Parts, Entry] = {}
        self._committed: dict[Parts, Entry] = {}
        self._broken = False
        #: Directories on disk already checked to be real directories.
        self._checked: set[Parts] = set()

    # -- the two layers ------------------------------------------------------------------

    def commit(self) -> None:
        """What the tree holds now belongs to a commit (``discard`` goes back to here)."""
        self._committed = dict(self._entries)

    def discard(self) -> None:
        """Drop every change since the last ``commit``."""
        self._entries = dict(self._committed)

    def forget(self) -> None:
        """The disk was reset to a commit (a sync): nothing in memory holds any more."""
        self._entries, self._committed = {}, {}
        self._broken = False
        self._checked.clear()

    def write_out(self) -> bool:
        """Write what the commits hold to disk (changes after the last ``commit`` are
        dropped); whether the disk now equals the last commit. Never raises: a failure is
        logged, and the clone then has to be synced before it is trusted again."""
        self.discard()
        pending, self._entries, self._committed = self._entries, {}, {}
        self._checked.clear()
        if self._broken:
            return False
        try:
            # Sorted, a removed directory comes before anything written again inside it.
            for parts, entry in sorted(pending.items()):
                if isinstance(entry, _Gone):
                    self._disk.remove(parts)
                elif isinstance(entry, Link):
                    self._disk.symlink(parts, entry.target)
                else:
                    try:
                        self._disk.write(parts, entry)
                    except UnsafePath:
                        # A directory or link this batch removed and then wrote over.
                        self._disk.remove(parts)
                        self._disk.write(parts, entry)
        except Exception:
            log.exception("writing the batch's files into the clone failed; it will be synced")
            self._broken = True
        return not self._broken

    def entry(self, parts: Parts) -> bytes | str | None | _OnDisk:
        """What a commit records at ``parts``: a file's bytes, a symlink's text, None when
        it is gone, ``ON_DISK`` when memory holds nothing about it."""
        entry = self._entries.get(parts)
        if isinstance(entry, bytes):
            return entry
        if isinstance(entry, Link):
            return entry.text
        if entry is GONE or self._hidden(parts):
            return None
        return ON_DISK

    # -- SafeTree's interface ------------------------------------------------------------

    def read(self, parts: Parts) -> bytes | None:
        check_parts(parts)
        entry = self._state(parts)
        if entry is None and not self._live_under(parts):
            return super().read(parts)
        if isinstance(entry, Link):
            raise UnsafePath(f"{join(parts)!r} is a symlink; refusing to read it")
        if not isinstance(entry, bytes):
            if self._live_under(parts):
                raise UnsafePath(f"{join(parts)!r} is not a regular file")
            return None
        return entry

    def write(self, parts: Parts, content: bytes) -> str | None:
        # Reading refuses a symlink or a directory at ``parts`` itself, as writing would.
        if self.read(parts) == content:
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
            return super().read_symlink(parts)
        return entry.text if isinstance(entry, Link) else None

    def list(self, parts: Parts) -> list[str]:
        if parts:
            check_parts(parts)
        entry = self._state(parts) if parts else None
        if isinstance(entry, (bytes, Link)):
            raise UnsafePath(f"{join(parts)!r} is a file or symlink where a directory is needed")
        names = set(super().list(parts)) if entry is None else set()
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
        if isinstance(entry, (bytes, Link)):
            return False
        if self._live_under(parts):
            return True
        return entry is None and super().is_dir(parts)

    def remove(self, parts: Parts) -> str | None:
        check_parts(parts)
        self._check_directories_above(parts)
        entry = self._state(parts)
        existed = self._live_under(parts) or (
            isinstance(entry, (bytes, Link)) or (entry is None and self._on_disk(parts))
        )
        if not existed:
            return None
        depth = len(parts)
        for path in [path for path in self._entries if path[:depth] == parts]:
            del self._entries[path]
        self._entries[parts] = GONE
        return join(parts)

    # -- how memory and disk combine ---------------------------------------------------------

    def _state(self, parts: Parts) -> Entry | None:
        """What memory says of ``parts``: its entry; ``GONE`` when a directory above it was
        removed; None when memory says nothing (the disk decides).

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
        memory, or one on disk above the first directory this batch removed."""
        check_parts(parts)
        self._state(parts)
        above = parts[:-1]
        for end in range(1, len(above) + 1):
            if self._entries.get(above[:end]) is GONE:
                above = above[: end - 1]
                break
        if above:
            self._directory(above, create=False)

    def _on_disk(self, parts: Parts) -> bool:
        """Whether the disk holds anything at ``parts`` (its directories already checked)."""
        directory = self._directory(parts[:-1], create=False)
        if directory is None:
            return False
        try:
            os.lstat(directory / parts[-1])
        except FileNotFoundError:
            return False
        return True

    def _directory(self, parts: Parts, *, create: bool) -> Path | None:
        """``SafeTree``'s walk, without creating anything, remembering the directories it
        has checked: nothing changes the disk under a batch until ``write_out``."""
        if create:
            raise AssertionError("a buffered tree never writes to disk before write_out")
        current = self.root
        for end in range(1, len(parts) + 1):
            current = current / parts[end - 1]
            if parts[:end] in self._checked:
                continue
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                return None
            if not stat.S_ISDIR(mode):
                raise UnsafePath(
                    f"the manifest repository has a symlink or file at {join(parts[:end])!r} "
                    "where a directory is needed; refusing to go through it"
                )
            self._checked.add(parts[:end])
        return current
