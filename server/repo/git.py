"""Running git: fixed argument lists, a timeout on every call, a hardened environment.

Only the manifest repository module uses this. No user text is ever put in an argument: paths
are built from validated names and come after ``--``; commit messages go on stdin.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from server.config import redact
from server.repo.credentials import GitCredentials

LOCAL_TIMEOUT = 120.0
_CREDENTIALS = re.compile(r"//[^/@\s]+@")
# git's advice after any failed connection; dropping it keeps the cause (say, "Host key
# verification failed.") among the few lines an error message repeats.
_BOILERPLATE = {
    "Please make sure you have the correct access rights",
    "and the repository exists.",
}


# git runs under this shell, which leads a session (and process group) of its own, so that a
# timeout can kill the whole group: git and what it starts (ssh, remote helpers, pack-objects,
# the hooks of a local remote). The shell also makes the group die with the server: it gets
# SIGTERM when the thread that started it dies (the parent-death signal, set by setpriv or by
# _die_with_parent) and then kills its whole group. The signal on git itself would not do: git's
# children do not inherit it, and a killed git would leave them running, reparented to init,
# still writing to the clone or the remote while the next worker holds the repository lock.
#
# "$1" is the pid of the process that started the shell: if it died before the signal was set,
# the shell's parent is someone else already and git is not started. A background command
# reads /dev/null, so fd 3 hands it our stdin. The shell exits with git's status.
#
# The signal comes when the *thread* that started the shell ends, not the process. That is
# early only if the thread ends while git runs, which it cannot: ``Git.run`` waits for git in
# the thread that started it. (Request threads and the recovery thread live as long as their
# worker anyway.)
_SUPERVISOR = (
    'trap "kill -KILL 0" TERM; [ "$PPID" = "$1" ] || exit 125; shift; '
    'exec 3<&0; "$@" <&3 3<&- & wait $!'
)
_PR_SET_PDEATHSIG = 1


@functools.cache
def _setpriv() -> str | None:
    """util-linux's setpriv if it can set the parent-death signal (busybox's cannot)."""
    path = shutil.which("setpriv")
    if path is None:
        return None
    try:
        probe = subprocess.run(
            [path, "--pdeathsig", "TERM", "--", "true"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return path if probe.returncode == 0 else None


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """glibc's prctl(2), or None off Linux."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _die_with_parent() -> None:
    """In the child, between fork and exec: SIGTERM when the parent thread dies. Only for
    systems without setpriv: a ``preexec_fn`` makes subprocess fork the whole worker instead
    of vfork, which costs milliseconds per git command in a large process."""
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGTERM), ctypes.c_ulong(0))


def _supervised(command: list[str]) -> tuple[list[str], Callable[[], None] | None]:
    """``command`` under the supervising shell, and the ``preexec_fn`` it needs (if any)."""
    parent = str(os.getpid())
    setpriv = _setpriv()
    if setpriv is not None:
        wrapper = [setpriv, "--pdeathsig", "TERM", "--"]
        return [*wrapper, "/bin/sh", "-c", _SUPERVISOR, "sh", parent, *command], None
    if _prctl() is not None:
        return ["/bin/sh", "-c", _SUPERVISOR, "sh", parent, *command], _die_with_parent
    return command, None  # not Linux: the group is still killed on a timeout


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

    def __init__(self, cwd: Path, home: Path, credentials: GitCredentials | None = None) -> None:
        self.cwd = cwd
        self.credentials = credentials or GitCredentials()
        if not home.is_dir():  # a stat is cheaper than a mkdir that fails on every batch
            home.mkdir(parents=True, exist_ok=True)
        # Inherit PATH and (for SSH remotes without a configured key) GIT_SSH_COMMAND /
        # SSH_AUTH_SOCK, but never the user's git configuration: HOME points at a directory
        # the server owns.
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
            # Never a repository above this directory: while the clone has no .git (before
            # its first init, or while a broken one is replaced) git would otherwise find
            # the one the data directory sits in (the project's own checkout, by default).
            "GIT_CEILING_DIRECTORIES": os.path.dirname(os.path.abspath(cwd)),
        }
        for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG_GLOBAL"):
            self.env.pop(name, None)
        ssh_command = self.credentials.ssh_command()
        if ssh_command is not None:
            self.env["GIT_SSH_COMMAND"] = ssh_command
            self.env.pop("GIT_SSH", None)
        self.config_args = [
            "-c",
            "core.hooksPath=/dev/null",
            # No automatic gc or maintenance after a fetch or a commit: it would run inside a
            # batch, or detach and outlive the server. ManifestRepo.housekeeping does it.
            "-c",
            "gc.auto=0",
            "-c",
            "maintenance.auto=false",
            "-c",
            "commit.gpgSign=false",
            *self.credentials.config_args(),
        ]

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
        command, preexec = _supervised(["git", *self.config_args, *args])
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
            # A new session so a timeout kills git's children too (ssh, remote helpers);
            # killing only git would leave them holding the pipes open. See _SUPERVISOR.
            start_new_session=True,
            preexec_fn=preexec,  # only without setpriv: see _die_with_parent
        )
        try:
            out, err = process.communicate(data, timeout=max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise GitTimeout(f"git {args[0]} timed out after {timeout:.0f}s") from None
        stdout = out.decode("utf-8", "replace")
        stderr = err.decode("utf-8", "replace")
        if process.returncode != 0:
            # What a failed command printed ends up in errors, logs and /readyz; a remote may
            # echo what it was sent, so the token goes before anyone sees it.
            stdout, stderr = self.scrub(stdout), self.scrub(stderr)
        result = Result(stdout, stderr, process.returncode)
        if check and result.returncode != 0:
            raise GitError(f"git {args[0]} failed: {summarize(stderr or stdout)}")
        return result

    def scrub(self, text: str) -> str:
        """``text`` with the current token (read now: it may have rotated) blanked out."""
        token = self.credentials.token()
        return text.replace(token, "***") if token else text


def summarize(text: str, count: int = 3) -> str:
    """The last lines of git's output on one line, with any credentials blanked out."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    lines = [line for line in lines if line not in _BOILERPLATE]
    # Never repeat credentials that a remote URL may carry (https://user:token@host/...).
    return _CREDENTIALS.sub("//***@", redact(" / ".join(lines[-count:]))) or "no output"
