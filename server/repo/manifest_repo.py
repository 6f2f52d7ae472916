"""The working clone of the manifest repository: sync with the remote, commit, push.

Only the exporter uses this module. File access inside the tree goes through ``SafeTree``,
which never follows a symlink; what to write is decided by ``layout``.

Over 250 lines: every git command on the clone, so the clone's invariants (clean marker, head
cache, stale locks) are kept in one class.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
import weakref
from collections.abc import Callable
from pathlib import Path

from server.repo.buffered_tree import BufferedTree
from server.repo.commits import CommitStream
from server.repo.credentials import GitCredentials
from server.repo.git import Git
from server.repo.git import GitError
from server.repo.git import NonFastForward
from server.repo.git import PushRejected
from server.repo.git import Result
from server.repo.git import summarize
from server.repo.git_objects import reader_for
from server.repo.head_tree import HeadTree

# Kept inside .git so it is never committed; present only while the clone equals the remote.
_CLEAN_MARKER = "kuberpult-lite-clean"
# Kept inside .git too: when this clone was made anew because the old one could not fetch.
_STARTED_OVER_MARKER = "kuberpult-lite-started-over"
#: A clone made anew less than this long ago is not made anew again (see ``sync``).
START_OVER_SECONDS = 600.0

log = logging.getLogger(__name__)


class ManifestRepo:
    """A working clone of the remote manifest repository, on one branch."""

    def __init__(
        self,
        path: Path,
        url: str,
        branch: str,
        git_home: Path,
        credentials: GitCredentials | None = None,
    ) -> None:
        self.path = path
        self.url = url
        self.branch = branch
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
        self.git = Git(path, git_home, credentials)
        self._head: str | None = None  # the branch head when known ("" = unborn), else None
        self.objects = reader_for(self.git)
        #: The branch's files: read from git's objects, written in memory (the clone has no
        #: working tree; see BufferedTree).
        self.tree = BufferedTree(path, _head_tree_of(weakref.ref(self)))

    # -- keeping the clone equal to the remote ---------------------------------------------

    def take_clean_marker(self) -> bool:
        """Remove the marker that says the clone equals the remote; return whether it was there.

        The marker holds the branch head, so the fast path needs no ``git rev-parse``.
        """
        marker = self.path / ".git" / _CLEAN_MARKER
        try:
            self._head = marker.read_text().strip()
        except FileNotFoundError:
            self._head = None
            return False
        marker.unlink()
        return True

    def mark_clean(self) -> None:
        """Record that the clone equals the remote (after a push or a sync)."""
        (self.path / ".git" / _CLEAN_MARKER).write_text(self.head() or "")

    def sync(self, timeout: float) -> None:
        """Make the clone's branch equal to the remote's: fetch and move the branch.

        Also repairs what a killed git leaves behind (a stale lock file), and a clone that
        cannot fetch from a remote that answers (an object its refs name is missing or
        corrupt): that clone starts again from the remote. An empty remote, or one without
        our branch, gives an empty unborn branch. The clone has no working tree: files an
        older version checked out, or anyone left there, are removed.
        """
        self.tree.forget()
        fetched = self._fetch(timeout)
        if fetched.returncode != 0 and self._remote_has_branch(fetched, timeout):
            fetched = self._repair(fetched, timeout)
        tracking = f"refs/remotes/origin/{self.branch}"
        self.git.run(["symbolic-ref", "HEAD", f"refs/heads/{self.branch}"])
        if fetched.returncode == 0:
            self.git.run(["update-ref", f"refs/heads/{self.branch}", tracking])
        else:
            self.git.run(["update-ref", "-d", f"refs/heads/{self.branch}"], check=False)
            self.git.run(["update-ref", "-d", tracking], check=False)
        _remove_working_tree(self.path)
        self._head = None

    def _fetch(self, timeout: float) -> Result:
        """The remote's branch into the tracking ref (the clone made first if it is not)."""
        if not (self.path / ".git").is_dir():
            self.git.run(["init", "-q"])
        # Under the repository lock no git of ours runs: a lock file a killed git left behind
        # (index, HEAD, a ref) would fail every later command.
        clear_stale_locks(self.path / ".git", STALE_LOCK_SECONDS)
        remotes = self.git.run(["remote"]).stdout.split()
        self.git.run(["remote", "set-url" if "origin" in remotes else "add", "origin", self.url])
        tracking = f"refs/remotes/origin/{self.branch}"
        return self.git.run(
            ["fetch", "-q", "--no-tags", "origin", f"+refs/heads/{self.branch}:{tracking}"],
            timeout=timeout,
            check=False,
        )

    def _remote_has_branch(self, fetched: Result, timeout: float) -> bool:
        """After a failed fetch: whether the remote answers and has the branch (then the
        fault is the clone's); False when it lacks the branch. An unreachable remote raises."""
        probe = self.git.run(
            ["ls-remote", "--exit-code", "--heads", "origin", f"refs/heads/{self.branch}"],
            timeout=timeout,
            check=False,
        )
        if probe.returncode not in (0, 2):
            raise GitError(f"git fetch failed: {summarize(fetched.stderr or probe.stderr)}")
        return probe.returncode == 0

    def _repair(self, failed: Result, timeout: float) -> Result:
        """After a fetch failed while the remote answers with the branch: first drop the
        clone's refs that name an object it does not hold (what a lost write leaves; git
        reads every ref to negotiate), then, if git still names a fault of the clone's own,
        make the clone anew. A failure that names no such fault (the network) keeps it."""
        broken = [ref for ref, sha in self._refs() if not self._holds_commit(sha)]
        if broken:
            log.warning("the clone's %s name missing objects: dropped", ", ".join(broken))
            for ref in broken:
                self.git.run(["update-ref", "-d", "--no-deref", ref], check=False)
            # Their reflogs still name the missing objects (git fsck would say so); the
            # server never reads a reflog.
            shutil.rmtree(self.path / ".git" / "logs", ignore_errors=True)
            failed = self._fetch(timeout)
        if failed.returncode == 0:
            return failed
        if not _names_a_broken_clone(failed.stderr) or not self.start_over_unless_lately(
            summarize(failed.stderr)
        ):
            raise GitError(f"git fetch failed: {summarize(failed.stderr)}")
        fetched = self._fetch(timeout)
        if fetched.returncode != 0:
            raise GitError(f"git fetch failed: {summarize(fetched.stderr)}")
        return fetched

    def start_over_unless_lately(self, reason: str) -> bool:
        """Make the clone anew at the next fetch, unless that was done lately (then False): it
        lacks or cannot read an object, and a fetch into it would not bring that back (see
        also ``git_objects.MissingObject``). A new clone that failed the same way lately
        points at the remote: cloning it again on every export would fetch all of it each
        time. Nothing is lost with the clone: what the remote lacks, the store holds."""
        if self._started_over_lately():
            return False
        log.warning(
            "the clone lacks objects or cannot read them (%s); it starts again from the remote",
            reason,
        )
        self._start_over()
        return True

    def _refs(self) -> list[tuple[str, str]]:
        listed = self.git.run(["for-each-ref", "--format=%(refname) %(objectname)"], check=False)
        return [
            (ref, sha)
            for ref, _, sha in (line.partition(" ") for line in listed.stdout.splitlines())
            if ref and sha
        ]

    def _holds_commit(self, sha: str) -> bool:
        found = self.git.run(["cat-file", "-e", f"{sha}^{{commit}}"], check=False)
        return found.returncode == 0

    def _start_over(self) -> None:
        """Move the clone's ``.git`` aside and delete it; the next fetch makes a new one. Other
        workers' readers keep what they opened, and find the new objects by path. (What a
        kill leaves of the old one goes with the working tree, at the end of the sync.)"""
        broken = self.path / f".git-broken-{os.getpid()}-{time.time_ns()}"
        (self.path / ".git").rename(broken)
        shutil.rmtree(broken, ignore_errors=True)
        self.objects.close()
        self.git.run(["init", "-q"])
        (self.path / ".git" / _STARTED_OVER_MARKER).touch()

    def _started_over_lately(self) -> bool:
        marker = self.path / ".git" / _STARTED_OVER_MARKER
        try:
            return time.time() - marker.stat().st_mtime < START_OVER_SECONDS
        except FileNotFoundError:
            return False

    def discard_uncommitted(self) -> None:
        """Drop the changes since the last local commit (they were never written to disk)."""
        self.tree.discard()

    # -- committing and pushing --------------------------------------------------------------

    def commits(self, committer: tuple[str, str]) -> CommitStream:
        """Start a batch of commits on the branch (made at once, as one pack)."""
        return CommitStream(self, committer)

    def housekeeping(self, timeout: float) -> None:
        """Roll the small packs that batches leave (one each) and loose objects into bigger
        packs, as a geometric progression, so a big pack is rewritten only rarely.

        Safe beside the exporter, so it needs no lock: every object of a pack it deletes is
        in the pack it has just written, and it prunes nothing (``git gc`` would). Git's
        own automatic gc is off for every command (see ``Git``): it could start in the
        middle of a batch, or detach and outlive the server. What a killed git left in the
        pack directory (temporary packs) goes once it is older than any git command runs.
        """
        pack_dir = self.path / ".git" / "objects" / "pack"
        cutoff = time.time() - STALE_TEMPORARY_SECONDS
        for entry in _entries(pack_dir):
            if entry.name.startswith(("tmp_", ".tmp-")) and _older(entry, cutoff):
                Path(entry.path).unlink(missing_ok=True)
        self.git.run(["repack", "-d", "-q", "--geometric=2"], timeout=timeout)

    def pack_count(self) -> int:
        """How many packs housekeeping could roll up (each batch adds one; a kept pack, one a
        killed fetch left with its ``.keep``, stays as it is)."""
        names = {entry.name for entry in _entries(self.path / ".git" / "objects" / "pack")}
        return sum(
            1
            for name in names
            if name.startswith("pack-")
            and name.endswith(".pack")
            and name.removesuffix(".pack") + ".keep" not in names
        )

    def head(self) -> str | None:
        """The sha of the current commit, or None on an unborn branch."""
        if self._head is None:
            result = self.git.run(["rev-parse", "--verify", "-q", "HEAD"], check=False)
            self._head = result.stdout.strip()
        return self._head or None

    def recent_trailers(self, key: str, count: int) -> dict[str, str]:
        """``key`` trailer value -> commit, over the newest ``count`` commits of the branch."""
        separator = "\x1e"
        result = self.git.run(
            [
                "log",
                f"-n{count}",
                f"--format=%H %(trailers:key={key},valueonly,separator=%x1f){separator}",
            ],
            check=False,
        )
        found: dict[str, str] = {}
        for record in result.stdout.split(separator):
            sha, _, values = record.strip().partition(" ")
            for value in values.split("\x1f"):
                if value.strip():
                    found.setdefault(value.strip(), sha)
        return found

    def last_commit_touching(self, path: str) -> str | None:
        """The newest commit that changed ``path``."""
        result = self.git.run(["log", "-1", "--format=%H", "--", path], check=False)
        return result.stdout.strip() or None

    def push(self, timeout: float) -> None:
        """Push the branch (never forced).

        :raises NonFastForward: someone else pushed first (or while ours was under way).
        :raises PushRejected: a hook or protection refused it.
        :raises GitError: anything else (network, permissions, timeout).
        """
        result = self.git.run(
            ["push", "--porcelain", "origin", f"HEAD:refs/heads/{self.branch}"],
            timeout=timeout,
            check=False,
        )
        if result.returncode == 0:
            return
        local = Path(self.url)
        if local.is_absolute() and local.is_dir() and "File exists" in result.stderr:
            # A remote on this disk (the embedded default) runs receive-pack in our process
            # tree: a worker killed mid-push can leave its ref lock. Real git servers clean up
            # after their own; here nobody else would. Git holds a ref lock for milliseconds.
            clear_stale_locks(local, REMOTE_STALE_LOCK_SECONDS)
        for line in result.stdout.splitlines():
            if line.startswith("!"):
                if "[rejected]" in line or _lost_the_race(line, result.stderr):
                    raise NonFastForward(line.split("\t")[-1])
                reason = summarize(line.split("\t")[-1] + "\n" + result.stderr)
                raise PushRejected(f"the remote rejected the push: {reason}")
        raise GitError(f"git push failed: {summarize(result.stderr)}")


#: How git says that the branch moved between our push's start and its ref update: the
#: ref's status line, and the reason on stderr. A hook's refusal has another status line
#: ("pre-receive hook declined"), whatever the hook prints.
_RACE_STATUS = "(failed to update ref)"
_RACE_REASON = re.compile(
    r"cannot lock ref '[^']+': is at [0-9a-f]{40,64} but expected [0-9a-f]{40,64}"
)
#: GitHub's status line for the same race.
_RACE_STATUS_GITHUB = "(incorrect old value provided)"

#: What git says when the clone itself lacks or cannot read an object (not the remote).
_BROKEN_CLONE_SIGNS = ("bad object", "is corrupt", "did not send all necessary objects")


def _lost_the_race(status: str, stderr: str) -> bool:
    """Whether a refused ref update was a race with another push (then: fetch and apply
    again), not a refusal."""
    if _RACE_STATUS_GITHUB in status:
        return True
    return _RACE_STATUS in status and _RACE_REASON.search(stderr) is not None


def _names_a_broken_clone(stderr: str) -> bool:
    return any(sign in stderr for sign in _BROKEN_CLONE_SIGNS)


#: A lock file in our clone this old is stale (we hold the repository lock; our git is dead).
STALE_LOCK_SECONDS = 0.0
#: A ref lock in a local remote this old is stale (git holds one for milliseconds).
REMOTE_STALE_LOCK_SECONDS = 5.0


def _head_tree_of(repo: weakref.ref[ManifestRepo]) -> Callable[[], HeadTree]:
    """The files of ``repo``'s head, asked when needed. The tree holds its clone weakly:
    a cycle would keep a batch's manifests in memory until the garbage collector runs."""

    def head_tree() -> HeadTree:
        clone = repo()
        if clone is None:
            raise ReferenceError("the clone is gone")
        return HeadTree(clone.objects, clone.head())

    return head_tree


def _remove_working_tree(clone: Path) -> None:
    """Everything in the clone's directory but ``.git``: nothing reads it (the tree is read
    from git's objects), and a stale copy of the files would only mislead whoever looks."""
    for entry in _entries(clone):
        if entry.name == ".git":
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            Path(entry.path).unlink(missing_ok=True)
    (clone / ".git" / "index").unlink(missing_ok=True)


def clear_stale_locks(git_dir: Path, older_than: float) -> list[Path]:
    """Remove git's lock files (``index.lock``, ``HEAD.lock``, ``refs/**.lock``,
    ``packed-refs.lock``, ...) older than ``older_than`` seconds; return what was removed."""
    removed: list[Path] = []
    now = time.time()
    candidates = [*git_dir.glob("*.lock"), *(git_dir / "refs").rglob("*.lock")]
    for path in candidates:
        try:
            if path.is_file() and not path.is_symlink() and now - path.stat().st_mtime > older_than:
                path.unlink()
                removed.append(path)
        except OSError:
            continue  # gone already, or not ours to remove
    return removed


#: Older than this, a temporary file in the pack directory belongs to no running git.
STALE_TEMPORARY_SECONDS = 3600.0


def _older(entry: os.DirEntry[str], cutoff: float) -> bool:
    """Whether ``entry`` was last changed before ``cutoff`` (False once it is gone: a running
    git renames its temporary files)."""
    try:
        return entry.stat(follow_symlinks=False).st_mtime < cutoff
    except FileNotFoundError:
        return False


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(directory))
    except FileNotFoundError:
        return []
