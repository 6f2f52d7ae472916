"""The working clone of the manifest repository: sync with the remote, stage, commit, push.

Only the exporter uses this module. File access inside the tree goes through ``SafeTree``,
which never follows a symlink; what to write is decided by ``layout``.
"""

from __future__ import annotations

from pathlib import Path

from server.git import Git
from server.git import GitError
from server.git import NonFastForward
from server.git import PushRejected
from server.git import summarize
from server.safe_tree import SafeTree

# Kept inside .git so it is never committed; present only while the clone equals the remote.
_CLEAN_MARKER = "kuberpult-lite-clean"


class ManifestRepo:
    """A working clone of the remote manifest repository, on one branch."""

    def __init__(self, path: Path, url: str, branch: str, git_home: Path) -> None:
        self.path = path
        self.url = url
        self.branch = branch
        path.mkdir(parents=True, exist_ok=True)
        self.git = Git(path, git_home)
        self.tree = SafeTree(path)

    # -- keeping the clone equal to the remote ---------------------------------------------

    def take_clean_marker(self) -> bool:
        """Remove the marker that says the clone equals the remote; return whether it was there."""
        try:
            (self.path / ".git" / _CLEAN_MARKER).unlink()
        except FileNotFoundError:
            return False
        return True

    def mark_clean(self) -> None:
        """Record that the clone equals the remote (after a push or a sync)."""
        (self.path / ".git" / _CLEAN_MARKER).touch()

    def sync(self, timeout: float) -> None:
        """Make the clone equal to the remote branch: fetch, hard reset, clean.

        Also repairs what a killed git leaves behind (a stale index.lock, a dirty tree).
        An empty remote, or one without our branch, gives an empty unborn branch.
        """
        if not (self.path / ".git").is_dir():
            self.git.run(["init", "-q"])
        remotes = self.git.run(["remote"]).stdout.split()
        self.git.run(["remote", "set-url" if "origin" in remotes else "add", "origin", self.url])
        (self.path / ".git" / "index.lock").unlink(missing_ok=True)
        tracking = f"refs/remotes/origin/{self.branch}"
        fetched = self.git.run(
            ["fetch", "-q", "--no-tags", "origin", f"+refs/heads/{self.branch}:{tracking}"],
            timeout=timeout,
            check=False,
        )
        self.git.run(["symbolic-ref", "HEAD", f"refs/heads/{self.branch}"])
        if fetched.returncode == 0:
            self.git.run(["reset", "-q", "--hard", tracking])
        else:
            # Either the remote is unreachable or it lacks the branch; only the second is fine.
            probe = self.git.run(
                ["ls-remote", "--exit-code", "--heads", "origin", f"refs/heads/{self.branch}"],
                timeout=timeout,
                check=False,
            )
            if probe.returncode != 2:
                raise GitError(f"git fetch failed: {summarize(fetched.stderr or probe.stderr)}")
            self.git.run(["update-ref", "-d", f"refs/heads/{self.branch}"], check=False)
            self.git.run(["update-ref", "-d", tracking], check=False)
            self.git.run(["read-tree", "--empty"])
        self.git.run(["clean", "-q", "-ffdx"])

    def discard_uncommitted(self) -> None:
        """Drop staged and unstaged changes since the last local commit."""
        if self.head() is None:
            self.git.run(["read-tree", "--empty"])
        else:
            self.git.run(["reset", "-q", "--hard", "HEAD"])
        self.git.run(["clean", "-q", "-ffdx"])

    # -- committing and pushing --------------------------------------------------------------

    def stage(self, paths: list[str]) -> None:
        """Stage exactly these paths, additions and removals (no scan of the rest of the tree)."""
        if paths:
            self.git.run(["add", "--all", "--", *sorted(set(paths))])

    def has_staged_changes(self) -> bool:
        """Whether the index differs from the last commit."""
        if self.head() is None:
            return bool(self.git.run(["ls-files", "--cached"]).stdout.strip())
        return self.git.run(["diff", "--cached", "--quiet"], check=False).returncode == 1

    def commit(self, message: str, author: tuple[str, str], committer: tuple[str, str]) -> str:
        """Commit the index with the message on stdin; return the new commit's sha."""
        identity = {
            "GIT_AUTHOR_NAME": author[0],
            "GIT_AUTHOR_EMAIL": author[1],
            "GIT_COMMITTER_NAME": committer[0],
            "GIT_COMMITTER_EMAIL": committer[1],
        }
        self.git.run(["commit", "-q", "--no-verify", "-F", "-"], stdin=message, env=identity)
        head = self.head()
        assert head is not None  # noqa: S101 - a commit was just made
        return head

    def head(self) -> str | None:
        """The sha of the current commit, or None on an unborn branch."""
        result = self.git.run(["rev-parse", "--verify", "-q", "HEAD"], check=False)
        return result.stdout.strip() or None

    def last_commit_touching(self, path: str) -> str | None:
        """The newest commit that changed ``path``."""
        result = self.git.run(["log", "-1", "--format=%H", "--", path], check=False)
        return result.stdout.strip() or None

    def push(self, timeout: float) -> None:
        """Push the branch (never forced).

        :raises NonFastForward: someone else pushed first.
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
        for line in result.stdout.splitlines():
            if line.startswith("!"):
                if "[rejected]" in line:
                    raise NonFastForward(line.split("\t")[-1])
                reason = summarize(line.split("\t")[-1] + "\n" + result.stderr)
                raise PushRejected(f"the remote rejected the push: {reason}")
        raise GitError(f"git push failed: {summarize(result.stderr)}")
