"""File access inside the manifest repository's working tree that never follows a symlink.

The remote can contain anything (Argo CD had CVEs from planted symlinks). Every path is given
as validated components; each directory on the way is checked with ``lstat`` and files are
opened with ``O_NOFOLLOW``. Symlinks are only ever created by us, with a relative target that
is checked to stay inside the tree.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

Parts = tuple[str, ...]


class ApplyError(Exception):
    """A release (or change) cannot be applied to the repository as it is; ``code`` says why."""

    code = "repository_error"


class UnsafePath(ApplyError):
    """The tree holds a symlink or a non-directory where we need to read or write."""

    code = "unsafe_repository_path"


def check_parts(parts: Parts) -> None:
    """Refuse a path that is empty or has a component that could leave the tree."""
    bad = ("", ".", "..", ".git")
    if not parts or any(p in bad or "/" in p or "\0" in p for p in parts):
        raise UnsafePath(f"refusing unsafe path {'/'.join(parts)!r}")


def changed(*paths: str | None) -> list[str]:
    """The paths that changed, from what ``write``/``symlink``/``remove`` returned."""
    return [path for path in paths if path is not None]


def join(parts: Parts) -> str:
    """The repo-relative path of ``parts``, as git wants it."""
    return "/".join(parts)


class SafeTree:
    """Reads and writes under ``root`` by path components, refusing symlinks on the way."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _directory(self, parts: Parts, *, create: bool) -> Path | None:
        """The directory at ``parts`` (created if asked); None if missing; raise if unsafe."""
        current = self.root
        for index, part in enumerate(parts):
            current = current / part
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                if not create:
                    return None
                os.mkdir(current)
                continue
            if not stat.S_ISDIR(mode):
                raise UnsafePath(
                    f"the manifest repository has a symlink or file at "
                    f"{join(parts[: index + 1])!r} where a directory is needed; "
                    "refusing to go through it"
                )
        return current

    def read(self, parts: Parts) -> bytes | None:
        """A file's bytes, or None if it (or a directory above it) does not exist."""
        check_parts(parts)
        directory = self._directory(parts[:-1], create=False)
        if directory is None:
            return None
        try:
            fd = os.open(directory / parts[-1], os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise UnsafePath(f"{join(parts)!r} is a symlink; refusing to read it") from None
            raise
        try:
            # Checked before fdopen, which raises IsADirectoryError (an OSError, taken for
            # a broken clone) on a directory.
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UnsafePath(f"{join(parts)!r} is not a regular file")
            handle = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        with handle:
            return handle.read()

    def write(self, parts: Parts, content: bytes) -> str | None:
        """Write a file, creating directories; return its repo-relative path, or None when
        it already held exactly ``content`` (nothing changed)."""
        check_parts(parts)
        if self.read(parts) == content:
            return None
        directory = self._directory(parts[:-1], create=True)
        assert directory is not None  # noqa: S101 - create=True always yields a directory
        try:
            fd = os.open(
                directory / parts[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644
            )
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.EISDIR):
                raise UnsafePath(
                    f"the manifest repository has a symlink or directory at {join(parts)!r}; "
                    "refusing to write through it"
                ) from None
            raise
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        return join(parts)

    def symlink(self, parts: Parts, target: Parts) -> str | None:
        """Make ``parts`` a relative symlink to the directory ``target`` (both repo-relative);
        None when it already was exactly that link."""
        relative = self.link_text(parts, target)
        directory = self._directory(parts[:-1], create=True)
        assert directory is not None  # noqa: S101 - create=True always yields a directory
        if self.read_symlink(parts) == relative:
            return None
        self.remove(parts)
        os.symlink(relative, directory / parts[-1])
        return join(parts)

    def link_text(self, parts: Parts, target: Parts) -> str:
        """What a symlink at ``parts`` to ``target`` holds: a relative path, checked to stay
        inside the tree."""
        check_parts(parts)
        check_parts(target)
        directory = self.root.joinpath(*parts[:-1])
        relative = os.path.relpath(self.root.joinpath(*target), directory)
        resolved = os.path.normpath(os.path.join(directory, relative))
        if os.path.commonpath([resolved, str(self.root)]) != str(self.root):
            raise UnsafePath(f"symlink target {join(target)!r} leaves the repository")
        return relative

    def read_symlink(self, parts: Parts) -> str | None:
        """The target text of a symlink, or None when ``parts`` is missing or not a symlink."""
        check_parts(parts)
        directory = self._directory(parts[:-1], create=False)
        if directory is None:
            return None
        try:
            return os.readlink(directory / parts[-1])
        except (FileNotFoundError, OSError):
            return None

    def list(self, parts: Parts) -> list[str]:
        """The names in a directory (sorted), or [] when it does not exist."""
        if parts:
            check_parts(parts)
        directory = self._directory(parts, create=False)
        return [] if directory is None else sorted(os.listdir(directory))

    def is_dir(self, parts: Parts) -> bool:
        """Whether ``parts`` is a real directory (a symlink to one is refused)."""
        check_parts(parts)
        try:
            return self._directory(parts, create=False) is not None
        except UnsafePath:
            return False

    def remove(self, parts: Parts) -> str | None:
        """Remove a file, symlink or directory tree (never following links).

        Returns the repo-relative path, or None when there was nothing to remove.
        """
        check_parts(parts)
        directory = self._directory(parts[:-1], create=False)
        if directory is None:
            return None
        path = directory / parts[-1]
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(mode):
            shutil.rmtree(path)  # rmtree does not follow symlinks inside the tree
        else:
            os.unlink(path)
        return join(parts)
