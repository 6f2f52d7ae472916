"""Moving the clone's branch without a git process (git's "files" ref format).

``git update-ref`` costs a process start (2-7 ms on this machine) for what is a lock file, one
line and a rename. This does the same, the way git does it: ``<ref>.lock`` created
exclusively (a second writer, or git, fails on it instead of racing), the current value
compared, the new one written and renamed over the ref. Only the exporter writes the branch,
under the repository lock; a lock file a killed worker leaves is removed by the next sync
(``clear_stale_locks``).
"""

from __future__ import annotations

import os
from pathlib import Path

from server.repo.git import GitError


def read_branch(git_dir: Path, branch: str) -> str | None:
    """The commit ``refs/heads/<branch>`` names (loose, else packed), or None."""
    name = f"refs/heads/{branch}"
    try:
        return (git_dir / name).read_text().strip() or None
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        pass
    try:
        packed = (git_dir / "packed-refs").read_text()
    except FileNotFoundError:
        return None
    for line in packed.splitlines():
        sha, _, ref = line.partition(" ")
        if ref == name and not line.startswith(("#", "^")):
            return sha
    return None


def move_branch(git_dir: Path, branch: str, new: str, old: str | None) -> None:
    """Point ``refs/heads/<branch>`` at ``new``, only if it names ``old`` now (None: absent).

    :raises GitError: the ref is locked, or it moved.
    """
    ref = git_dir / "refs" / "heads" / branch
    ref.parent.mkdir(parents=True, exist_ok=True)
    lock = ref.with_name(ref.name + ".lock")
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        raise GitError(f"cannot lock ref 'refs/heads/{branch}': {lock} exists") from None
    try:
        try:
            current = read_branch(git_dir, branch)
            if current != old:
                raise GitError(
                    f"cannot move 'refs/heads/{branch}': it is at {current}, expected {old}"
                )
            os.write(fd, f"{new}\n".encode())
        finally:
            os.close(fd)
        os.replace(lock, ref)
    except BaseException:
        lock.unlink(missing_ok=True)
        raise
