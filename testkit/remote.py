"""A real bare git repository standing in for the hosted manifest repository."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path

import git as gitpython

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Person",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test Person",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(*args: str, cwd: Path, check: bool = True) -> str:
    """Run git in ``cwd`` with a fixed test identity; return stdout."""
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout


class Remote:
    """A bare repository standing in for the hosted manifest repository."""

    def __init__(self, path: Path, branch: str = "main") -> None:
        self.path = path
        self.branch = branch

    @property
    def url(self) -> str:
        """What KUBERPULT_GIT_URL is set to."""
        return str(self.path)

    def head(self) -> str | None:
        """The branch's commit, or None if it does not exist."""
        out = git(
            "rev-parse", "--verify", "-q", f"refs/heads/{self.branch}", cwd=self.path, check=False
        )
        return out.strip() or None

    def read(self, path: str) -> bytes:
        """A file's bytes at the branch head."""
        result = subprocess.run(
            ["git", "show", f"{self.branch}:{path}"],
            cwd=self.path,
            capture_output=True,
            check=True,
            timeout=30,
        )
        return result.stdout

    def exists(self, path: str) -> bool:
        """Whether ``path`` is in the branch head's tree."""
        out = git("ls-tree", "--name-only", self.branch, "--", path, cwd=self.path, check=False)
        return bool(out.strip())

    def files(self) -> list[str]:
        """Every file path at the branch head (read with GitPython: an independent reader of
        what the server pushed); none when the branch does not exist."""
        if self.head() is None:
            return []
        repo = gitpython.Repo(self.path)
        try:
            found = []
            for item in repo.commit(self.branch).tree.traverse():
                if not isinstance(item, tuple) and item.type == "blob":
                    found.append(str(item.path))
        finally:
            repo.close()
        return sorted(found)

    def log(self, fmt: str = "%s") -> list[str]:
        """One formatted line per commit, newest first."""
        out = git("log", f"--format={fmt}", self.branch, cwd=self.path, check=False)
        return out.splitlines()

    def push_files(
        self, tmp: Path, files: Mapping[str, str | bytes | None], message: str = "foreign change"
    ) -> str:
        """Someone else pushes a commit (as a human or another tool would); None deletes."""
        clone = tmp / f"foreign-{uuid.uuid4().hex[:8]}"
        if self.head() is None:
            git("init", "-q", f"--initial-branch={self.branch}", str(clone), cwd=tmp)
        else:
            git("clone", "-q", "--branch", self.branch, self.url, str(clone), cwd=tmp)
        for path, content in files.items():
            target = clone / path
            if content is None:
                git("rm", "-r", "-q", "--", path, cwd=clone)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content if isinstance(content, bytes) else content.encode())
            git("add", "--", path, cwd=clone)
        git("commit", "-q", "-m", message, cwd=clone)
        git("push", "-q", self.url, f"HEAD:refs/heads/{self.branch}", cwd=clone)
        return git("rev-parse", "HEAD", cwd=clone).strip()

    def push_foreign_commit(self, tmp: Path, path: str, content: str) -> str:
        """Someone else pushes one changed file."""
        return self.push_files(tmp, {path: content}, f"foreign change to {path}")

    def plant_symlink(self, tmp: Path, path: str) -> Path:
        """An attacker's push: ``path`` becomes a symlink to a new directory outside the
        repository, which is returned (it must stay empty)."""
        outside = tmp / f"outside-{uuid.uuid4().hex[:8]}"
        outside.mkdir()
        clone = tmp / f"attacker-{uuid.uuid4().hex[:8]}"
        git("init", "-q", f"--initial-branch={self.branch}", str(clone), cwd=tmp)
        (clone / path).parent.mkdir(parents=True, exist_ok=True)
        (clone / path).symlink_to(outside)
        git("add", "-A", cwd=clone)
        git("commit", "-q", "-m", "plant a symlink", cwd=clone)
        git("push", "-q", self.url, f"HEAD:refs/heads/{self.branch}", cwd=clone)
        return outside

    def mode(self, path: str) -> str:
        """The git file mode at the branch head: 100644 file, 120000 symlink, 040000 tree."""
        out = git("ls-tree", self.branch, "--", path, cwd=self.path)
        return out.split()[0] if out else ""

    def message(self, index: int = 0) -> str:
        """The message of the commit ``index`` steps below the head, as Kuberpult writes it
        (without our ``Release-Id`` trailer; ``trailers()`` has it)."""
        full = git("log", "-1", "--format=%B", f"{self.branch}~{index}", cwd=self.path)
        lines = [line for line in full.splitlines() if not line.startswith("Release-Id: ")]
        return "\n".join(lines).strip()

    def release_ids(self) -> list[str]:
        """Every Release-Id trailer on the branch, newest first (one per release commit)."""
        out = git(
            "log", "--format=%(trailers:key=Release-Id,valueonly)", self.branch, cwd=self.path
        )
        return [line.strip() for line in out.splitlines() if line.strip()]


def make_bare_remote(path: Path, branch: str = "main") -> Remote:
    """Create an empty bare repository at ``path``."""
    path.mkdir(parents=True)
    git("init", "-q", "--bare", f"--initial-branch={branch}", cwd=path)
    return Remote(path, branch)
