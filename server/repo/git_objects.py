"""git's objects, read from the clone without a working tree (see ``head_tree``).

Objects come from one long-running ``git cat-file --batch`` per worker process and clone.
An object never changes under its name, so trees and small files stay cached by sha: a batch
reads only the few trees the last one changed.
"""

from __future__ import annotations

import os
import subprocess
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import IO

from server.repo.git import Git
from server.repo.git import GitError

#: Kept in memory, by sha, up to about this many bytes: trees, and files up to SMALL_FILE.
CACHE_BYTES = 8 * 1024 * 1024
SMALL_FILE = 64 * 1024
#: What a parsed tree costs in memory per byte of its object (dict, strings, tuples).
_TREE_OVERHEAD = 4

#: (mode, sha) of each name in a tree.
Listing = dict[str, tuple[int, str]]
#: The mode given to a name a tree holds twice (git's fsck refuses such trees; a remote that
#: does not check may hold one): neither entry is used.
DUPLICATE = -1


class MissingObject(GitError):
    """The clone lacks an object its own trees name (a lost write, a pack deleted): a fetch
    does not notice, as git trusts that it holds what its branch reaches."""


class WrongObjectType(GitError):
    """An object is not of the type its tree entry says (a crafted tree)."""


class ObjectReader:
    """``git cat-file --batch`` on one clone, shared by the threads of one worker."""

    def __init__(self, git: Git) -> None:
        self._git = git
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._cache: OrderedDict[str, tuple[Listing | bytes, int]] = OrderedDict()
        self._cached_bytes = 0

    def tree(self, sha: str) -> Listing:
        """The entries of a tree object.

        :raises WrongObjectType: ``sha`` names something else (a crafted tree entry).
        """
        cached = self._cached(sha)
        if isinstance(cached, dict):
            return cached
        raw = self._typed(sha, b"tree")
        listing = _parse_tree(raw)
        self._remember(sha, listing, len(raw) * _TREE_OVERHEAD)
        return listing

    def remember_tree(self, sha: str, listing: Listing, raw_size: int) -> None:
        """Keep a tree this worker has just written (the next batch starts on it)."""
        self._remember(sha, listing, raw_size * _TREE_OVERHEAD)

    def blob(self, sha: str) -> bytes:
        """The bytes of a file (or a symlink's target).

        :raises WrongObjectType: ``sha`` names something else (a crafted tree entry).
        """
        cached = self._cached(sha)
        if isinstance(cached, bytes):
            return cached
        raw = self._typed(sha, b"blob")
        if len(raw) <= SMALL_FILE:
            self._remember(sha, raw, len(raw))
        return raw

    def _typed(self, sha: str, expected: bytes) -> bytes:
        kind, raw = self._object(sha)
        if kind != expected:
            raise WrongObjectType(f"object {sha} is a {kind.decode()}, not a {expected.decode()}")
        return raw

    def root_tree(self, commit: str) -> str:
        """The sha of a commit's tree."""
        kind, raw = self._object(commit)
        if kind != b"commit" or not raw.startswith(b"tree "):
            raise GitError(f"object {commit} is not a commit")
        return raw[5:45].decode()

    def close(self) -> None:
        with self._lock:
            _stop(self._process)
            self._process = None

    def _cached(self, sha: str) -> Listing | bytes | None:
        with self._lock:
            found = self._cache.get(sha)
            if found is None:
                return None
            self._cache.move_to_end(sha)
            return found[0]

    def _remember(self, sha: str, value: Listing | bytes, size: int) -> None:
        """Keep ``value``; the least recently used go once the cache holds too much (a big
        directory's tree changes with every batch: its old versions must not pile up). One
        object too big for a quarter of the cache is not kept: it would push out the rest
        (``HeadTree`` keeps what its batch walks through anyway)."""
        with self._lock:
            if sha in self._cache or size > CACHE_BYTES // 4:
                return
            self._cache[sha] = (value, size)
            self._cached_bytes += size
            while self._cached_bytes > CACHE_BYTES and len(self._cache) > 1:
                _, (_, dropped) = self._cache.popitem(last=False)
                self._cached_bytes -= dropped

    def _object(self, name: str) -> tuple[bytes, bytes]:
        """(type, content) of an object; a broken pipe is retried once with a new git."""
        with self._lock:
            for attempt in (1, 2):
                process = self._running()
                assert process.stdin is not None and process.stdout is not None  # noqa: S101
                try:
                    process.stdin.write(name.encode() + b"\n")
                    process.stdin.flush()
                    return _answer(process.stdout, name)
                except (BrokenPipeError, EOFError):
                    _stop(process)
                    self._process = None
                    if attempt == 2:
                        raise GitError("git cat-file stopped answering") from None
            raise AssertionError("unreachable")

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            # It reads our requests until end of input: it ends with this worker, and reads
            # only local objects, so it needs neither the supervisor nor a timeout.
            self._process = subprocess.Popen(  # noqa: S603 - a fixed argument list
                ["git", *self._git.config_args, "cat-file", "--batch"],  # noqa: S607
                cwd=self._git.cwd,
                env=self._git.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            weakref.finalize(self, _stop, self._process)
        return self._process


def _answer(stdout: IO[bytes], name: str) -> tuple[bytes, bytes]:
    header = stdout.readline()
    if not header:
        raise EOFError
    fields = header.split()
    if len(fields) == 2 and fields[1] == b"missing":
        raise MissingObject(f"git object {name} is missing from the clone")
    if len(fields) != 3:
        raise GitError(f"unexpected answer from git cat-file: {header[:100]!r}")
    size = int(fields[2])
    content = stdout.read(size)
    if len(content) != size or stdout.read(1) != b"\n":  # read apart: no copy of a big file
        raise EOFError
    return fields[1], content


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None:
        return
    try:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _parse_tree(raw: bytes) -> Listing:
    """A tree object's entries: ``<octal mode> <name>\\0<20-byte sha>`` each."""
    listing: Listing = {}
    position = 0
    while position < len(raw):
        space = raw.index(b" ", position)
        nul = raw.index(b"\0", space)
        mode = int(raw[position:space], 8)
        name = os.fsdecode(raw[space + 1 : nul])
        # git would read one entry and fast-import write the other: the tree this server
        # checks and the one it changes would differ.
        listing[name] = (
            (DUPLICATE, "") if name in listing else (mode, raw[nul + 1 : nul + 21].hex())
        )
        position = nul + 21
    return listing


_READERS: dict[tuple[int, Path], ObjectReader] = {}
_READERS_LOCK = threading.Lock()


def reader_for(git: Git) -> ObjectReader:
    """This worker's reader for the clone ``git`` runs in (a forked worker gets its own)."""
    key = (os.getpid(), git.cwd)
    with _READERS_LOCK:
        reader = _READERS.get(key)
        if reader is None:
            reader = _READERS[key] = ObjectReader(git)
        return reader
