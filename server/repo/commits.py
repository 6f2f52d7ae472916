"""A batch's commits: collected one by one, then made at once.

Each commit captures its files as the tree holds them *when it is added* (a later commit of
the batch may change the same path), from memory (see ``BufferedTree``). No index, no working
tree. ``finish`` writes every new object of the batch as one pack (see ``packs``) and moves
the branch (see ``refs``). A batch that must change a directory this server does
not rewrite faithfully (see ``tree_edit.UnsupportedTree``) is made by ``git fast-import``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.repo.head_tree import SYMLINK
from server.repo.packs import BLOB
from server.repo.packs import COMMIT
from server.repo.packs import PackBuilder
from server.repo.refs import move_branch
from server.repo.safe_tree import Parts
from server.repo.tree_edit import TreeEditor
from server.repo.tree_edit import UnsupportedTree

if TYPE_CHECKING:
    from server.repo.manifest_repo import ManifestRepo

FILE = 0o100644

# fast-import deflates every object with a fresh zlib stream (about 256 KiB of state) and
# frees it again; glibc then gives the top of the heap back to the system each time and
# takes it again for the next object (a thousand brk calls and 7,000 page faults for a batch
# of 16 releases). Keeping freed memory up to this much makes that batch's fast-import take
# 14 ms of CPU instead of 33-42 ms (measured on this machine). The process is short-lived.
FAST_IMPORT_ENV = {"MALLOC_TRIM_THRESHOLD_": str(64 * 1024 * 1024)}


class UnsafeIdentity(ValueError):
    """A commit identity holds a character that would end or corrupt its header line."""


_IDENTITY_FORBIDDEN = frozenset("<>\n\r\0")


def _identity_line(kind: str, identity: tuple[str, str]) -> str:
    name, email = identity
    if _IDENTITY_FORBIDDEN & set(name + email):
        raise UnsafeIdentity(f"the {kind} {name!r} <{email!r}> holds '<', '>', a newline or NUL")
    return f"{kind} {name} <{email}>"


#: What a commit does at a path: a file's bytes, a symlink's target, None = deleted.
Entry = bytes | str | None


@dataclass(frozen=True)
class _Commit:
    message: bytes
    author: str
    committer: str
    entries: list[tuple[Parts, Entry]]


class CommitStream:
    """The commits of one batch on ``repo``'s branch, made by ``finish``."""

    def __init__(self, repo: ManifestRepo, committer: tuple[str, str]) -> None:
        self.repo = repo
        self.committer = committer
        self.parent = repo.head()
        self.now = int(time.time())
        self._commits: list[_Commit] = []

    @property
    def count(self) -> int:
        return len(self._commits)

    def add(self, message: str, author: tuple[str, str], paths: list[str]) -> None:
        """One commit of ``paths`` (files, symlinks, or gone = deleted) with this message.

        :raises UnsafeIdentity: an author or committer that would break its header line.
        """
        # The identities are the only free text in a commit's header lines (the message comes
        # after them, and files are objects of their own): nothing but one plain line gets in.
        author_line = _identity_line("author", author)
        committer_line = _identity_line("committer", self.committer)
        tree = self.repo.tree
        entries: list[tuple[Parts, Entry]] = []
        for path in sorted(set(paths)):
            parts = tuple(path.split("/"))
            held = tree.entry(parts)
            if held is None or isinstance(held, bytes | str):
                entries.append((parts, held))
            # UNCHANGED: the commit keeps what its parent holds there.
        self._commits.append(_Commit(message.encode(), author_line, committer_line, entries))
        # What the batch writes next belongs to the next commit, or is dropped with it.
        tree.commit()

    def finish(self) -> list[str]:
        """Make the commits; return their shas in order (none when nothing was added)."""
        if not self._commits:
            return []
        try:
            shas = self._as_pack()
        except UnsupportedTree:
            shas = self._by_fast_import()
        self.repo._head = shas[-1]
        return shas

    def _as_pack(self) -> list[str]:
        repo = self.repo
        pack = PackBuilder()
        root = repo.objects.root_tree(self.parent) if self.parent else None
        trees = TreeEditor(repo.objects, root, pack)
        parent, shas = self.parent, []
        for commit in self._commits:
            for parts, held in commit.entries:
                if isinstance(held, bytes):
                    trees.set(parts, FILE, pack.add(BLOB, held))
                elif isinstance(held, str):
                    trees.set(parts, SYMLINK, pack.add(BLOB, held.encode()))
                else:
                    trees.delete(parts)
            header = f"tree {trees.write()}\n"
            if parent:
                header += f"parent {parent}\n"
            header += f"{commit.author} {self.now} +0000\n{commit.committer} {self.now} +0000\n\n"
            parent = pack.add(COMMIT, header.encode() + commit.message)
            shas.append(parent)
        pack.write(repo.path / ".git" / "objects" / "pack")
        for sha, listing, size in trees.written:
            repo.objects.remember_tree(sha, listing, size)
        # Compare-and-swap: the branch moves only from the commit the batch started on.
        move_branch(repo.path / ".git", repo.branch, shas[-1], self.parent)
        return shas

    def _by_fast_import(self) -> list[str]:
        repo = self.repo
        stream_path = repo.path / ".git" / "kuberpult-import"
        marks = repo.path / ".git" / "kuberpult-marks"
        try:
            with open(stream_path, "wb") as stream:
                for number, commit in enumerate(self._commits, start=1):
                    stream.write(
                        f"commit refs/heads/{repo.branch}\nmark :{number}\n"
                        f"{commit.author} {self.now} +0000\n"
                        f"{commit.committer} {self.now} +0000\n"
                        f"data {len(commit.message)}\n".encode()
                        + commit.message
                        + b"\n"
                    )
                    if number == 1 and self.parent:
                        stream.write(f"from {self.parent}\n".encode())
                    for parts, held in commit.entries:
                        quoted = _quote("/".join(parts))
                        if held is None:
                            stream.write(f"D {quoted}\n".encode())
                            continue
                        mode, data = (
                            (FILE, held) if isinstance(held, bytes) else (SYMLINK, held.encode())
                        )
                        stream.write(f"M {mode:o} inline {quoted}\ndata {len(data)}\n".encode())
                        stream.write(data + b"\n")
                    stream.write(b"\n")
            # Keep what fast-import writes as one pack (unpacking it into loose objects
            # costs a second process); housekeeping() consolidates the packs now and then.
            with open(stream_path, "rb") as stream:
                repo.git.run(
                    [
                        "-c",
                        "fastimport.unpackLimit=1",
                        "fast-import",
                        "--quiet",
                        f"--export-marks={marks}",
                    ],
                    stdin=stream,
                    env=FAST_IMPORT_ENV,
                )
            found = dict(line.split(" ", 1) for line in marks.read_text().split("\n") if line)
            return [found[f":{mark}"].strip() for mark in range(1, self.count + 1)]
        finally:
            stream_path.unlink(missing_ok=True)


def _quote(path: str) -> str:
    """A path as fast-import reads it (C-style quoting when it needs any)."""
    if not any(c in path for c in ' "\\\n\t') and not path.startswith('"'):
        return path
    escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("\t", "\\t") + '"'
