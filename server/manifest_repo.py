"""The manifest repository: Kuberpult's layout, safe file writes, commits and pushes.

Only the exporter uses this module. Every path is built from validated names, and nothing is
ever written through a symlink found in the tree: a remote can contain anything (Argo CD's
symlink CVEs), so each component is checked with ``lstat`` and files are opened ``O_NOFOLLOW``.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from server.git import Git
from server.git import GitError
from server.git import NonFastForward
from server.git import PushRejected
from server.git import summarize
from server.models import StoredRelease

# Kept inside .git so it is never committed; present only while the clone equals the remote.
_CLEAN_MARKER = "kuberpult-lite-clean"


class UnsafePath(Exception):
    """The tree holds a symlink or a non-directory where we need to write."""


class ManifestRepo:
    """A working clone of the remote manifest repository, on one branch."""

    def __init__(self, path: Path, url: str, branch: str, git_home: Path) -> None:
        self.path = path
        self.url = url
        self.branch = branch
        path.mkdir(parents=True, exist_ok=True)
        self.git = Git(path, git_home)

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

    # -- writing -----------------------------------------------------------------------------

    def write_release(self, release: StoredRelease) -> list[str]:
        """Write Kuberpult's files for ``release``; return the paths written (repo-relative)."""
        app = ("applications", release.application)
        files: dict[tuple[str, ...], bytes] = {}
        if release.team:
            files[(*app, "team")] = release.team.encode()
        directory = (*app, "releases", str(release.version))
        for name in ("source_commit_id", "source_author", "source_message", "display_version"):
            value = getattr(release, name)
            if value is not None:
                files[(*directory, name)] = value.encode()
        files[(*directory, "created_at")] = release.created_at.encode()
        for env, content in release.manifests.items():
            files[(*directory, "environments", env, "manifests.yaml")] = content
        return self.write_files(files)

    def write_files(self, files: dict[tuple[str, ...], bytes]) -> list[str]:
        """Write each file (path given as validated components), refusing to follow symlinks."""
        written = []
        for parts, content in files.items():
            self._write_one(parts, content)
            written.append("/".join(parts))
        return written

    def _write_one(self, parts: tuple[str, ...], content: bytes) -> None:
        if not parts or any(p in ("", ".", "..") or "/" in p or p.startswith(".") for p in parts):
            raise UnsafePath(f"refusing unsafe path {'/'.join(parts)!r}")
        current = self.path
        for index, part in enumerate(parts[:-1]):
            current = current / part
            try:
                os.mkdir(current)
            except FileExistsError:
                if current.is_symlink() or not current.is_dir():
                    where = "/".join(parts[: index + 1])
                    raise UnsafePath(
                        f"the manifest repository has a symlink or file at {where!r} where a "
                        "directory is needed; refusing to write through it"
                    ) from None
        target = current / parts[-1]
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.EISDIR):
                raise UnsafePath(
                    f"the manifest repository has a symlink or directory at {'/'.join(parts)!r}; "
                    "refusing to write through it"
                ) from None
            raise
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)

    # -- committing and pushing --------------------------------------------------------------

    def stage(self, paths: list[str]) -> None:
        """Add exactly these paths to the index (no scan of the rest of the tree)."""
        self.git.run(["add", "--", *paths])

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
