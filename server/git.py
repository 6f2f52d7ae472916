"""Running git: fixed argument lists, a timeout on every call, a hardened environment.

Only the manifest repository module uses this. No user text is ever put in an argument: paths
are built from validated names and come after ``--``; commit messages go on stdin.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

LOCAL_TIMEOUT = 120.0
_CREDENTIALS = re.compile(r"//[^/@\s]+@")


class GitError(Exception):
    """A git command failed; the message holds git's own words."""


class GitTimeout(GitError):
    """A git command ran past its timeout and was killed."""


class NonFastForward(GitError):
    """The remote moved since our last fetch; fetch, reset and re-apply."""


class PushRejected(GitError):
    """The remote refused the push (a hook or branch protection); retrying will not help."""


@dataclass(frozen=True)
class Result:
    """What a finished git command printed."""

    stdout: str
    stderr: str
    returncode: int


class Git:
    """Runs git in one working directory with a private HOME and no prompts."""

    def __init__(self, cwd: Path, home: Path) -> None:
        self.cwd = cwd
        if not home.is_dir():  # a stat is cheaper than a mkdir that fails on every batch
            home.mkdir(parents=True, exist_ok=True)
        # Inherit PATH and (for SSH remotes) GIT_SSH_COMMAND / SSH_AUTH_SOCK, but never the
        # user's git configuration: HOME points at a directory the server owns.
        self.env = {
            **os.environ,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/false",
            # Paths are data, never patterns: a name like '*' or ':(top)' means just itself.
            "GIT_LITERAL_PATHSPECS": "1",
            "LC_ALL": "C",
        }
        for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG_GLOBAL"):
            self.env.pop(name, None)

    def run(
        self,
        args: Sequence[str],
        *,
        timeout: float = LOCAL_TIMEOUT,
        stdin: str | bytes | BinaryIO | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> Result:
        """Run ``git <args>``; raise ``GitError`` on a non-zero exit when ``check``."""
        command = ["git", "-c", "core.hooksPath=/dev/null", "-c", "commit.gpgSign=false", *args]
        # A new session so a timeout kills git's children too (ssh, remote helpers); killing
        # only git would leave them holding the pipes open.
        data: bytes | None = None
        source: int | BinaryIO = subprocess.DEVNULL
        if isinstance(stdin, str):
            data, source = stdin.encode(), subprocess.PIPE
        elif isinstance(stdin, bytes):
            data, source = stdin, subprocess.PIPE
        elif stdin is not None:
            source = stdin  # an open file: git reads it directly
        process = subprocess.Popen(
            command,
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            stdin=source,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        data = (
            stdin.encode()
            if isinstance(stdin, str)
            else stdin
            if isinstance(stdin, bytes)
            else None
        )
        try:
            out, err = process.communicate(data, timeout=max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise GitTimeout(f"git {args[0]} timed out after {timeout:.0f}s") from None
        stdout = out.decode("utf-8", "replace")
        stderr = err.decode("utf-8", "replace")
        result = Result(stdout, stderr, process.returncode)
        if check and result.returncode != 0:
            raise GitError(f"git {args[0]} failed: {summarize(stderr or stdout)}")
        return result


def summarize(text: str, count: int = 3) -> str:
    """The last lines of git's output on one line, with any credentials blanked out."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    # Never repeat credentials that a remote URL may carry (https://user:token@host/...).
    return _CREDENTIALS.sub("//***@", " / ".join(lines[-count:])) or "no output"
