"""Running git: fixed argument lists, a timeout on every call, a hardened environment.

Only the manifest repository module uses this. No user text is ever put in an argument: paths
are built from validated names and come after ``--``; commit messages go on stdin.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from server.config import Config
from server.config import redact

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


@dataclass(frozen=True)
class GitCredentials:
    """How git authenticates to the remote; the secrets stay in files, read when used.

    ``ssh_key`` needs ``known_hosts`` (the pinned host key). ``token_file`` is for an https
    ``url``: its content, all whitespace removed, is sent as the password of ``username``, and
    only to the scheme, host and port of ``url``.
    """

    url: str = ""
    ssh_key: Path | None = None
    known_hosts: Path | None = None
    token_file: Path | None = None
    username: str = "x-access-token"

    def ssh_command(self) -> str | None:
        """GIT_SSH_COMMAND for the deploy key, or None to keep the inherited one."""
        if self.ssh_key is None or self.known_hosts is None:
            return None
        # -F /dev/null: no ssh_config (system or user) can add hosts, keys or proxy commands;
        # only the pinned host key is trusted (also not /etc/ssh/ssh_known_hosts); BatchMode
        # makes ssh fail instead of asking anything.
        return " ".join(
            [
                "ssh",
                f"-i {shlex.quote(str(self.ssh_key))}",
                "-o IdentitiesOnly=yes",
                "-o StrictHostKeyChecking=yes",
                f"-o UserKnownHostsFile={shlex.quote(str(self.known_hosts))}",
                "-o GlobalKnownHostsFile=/dev/null",
                "-o BatchMode=yes",
                "-F /dev/null",
            ]
        )

    def config_args(self) -> list[str]:
        """``-c`` options that make git ask a helper for the token (none without a token)."""
        if self.token_file is None:
            return []
        # scheme://host[:port] as written, without user@ (the key then matches any user).
        parts = urlsplit(self.url)
        origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        # The helper runs under `sh -c` with "get", "store" or "erase" appended; it answers only
        # "get", reading the file each time (a rotated token needs no restart). Its command
        # line, visible in ps, holds the file's path, never the token: tr reads the file and
        # printf is a builtin. Deleting all whitespace also keeps a stray newline in the file
        # from adding attributes to git's credential protocol.
        helper = (
            '!f() { test "$1" = get || exit 0; '
            f"t=$(tr -d ' \\t\\r\\n' < {shlex.quote(str(self.token_file))}) && "
            f"test -n \"$t\" && printf 'username=%s\\npassword=%s\\n' "
            f'{shlex.quote(self.username)} "$t"; }}; f'
        )
        return [
            # An empty value drops every helper configured before (a store or a cache would
            # write the token to disk); then ours, only for the remote's own origin, so a
            # redirect to another host is not given the token.
            "-c",
            "credential.helper=",
            "-c",
            f"credential.{origin}.helper={helper}",
        ]

    def token(self) -> str:
        """The token as the helper sends it ("" without a token file or when unreadable)."""
        if self.token_file is None:
            return ""
        try:
            return "".join(self.token_file.read_text(errors="replace").split())
        except OSError:
            return ""


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


#: The store view that says whether the remote answered since the server started (/readyz).
REMOTE_VIEW = "remote"
#: While the remote has not answered, /readyz asks it again at most this often (seconds).
REPROBE_SECONDS = 5.0


def remote_view(error: str | None) -> dict[str, object]:
    """What the "remote" view holds after a check: whether the remote answered, else why not."""
    return {
        "ok": error is None,
        "error": error,
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "checked_unix": time.time(),
    }


def probe_remote(config: Config, timeout: float) -> str | None:
    """Ask the remote for the branch (``git ls-remote``), with the server's credentials and
    outside any clone: None when it answered (with or without the branch), else why not,
    without credentials."""
    home = config.data_dir / "git-home"
    git = Git(
        home,
        home,
        GitCredentials(
            url=config.git_url,
            ssh_key=config.git_ssh_key_path,
            known_hosts=config.git_known_hosts_path,
            token_file=config.git_token_file,
            username=config.git_username,
        ),
    )
    try:
        result = git.run(
            ["ls-remote", "--heads", "--", config.git_url, f"refs/heads/{config.git_branch}"],
            timeout=timeout,
            # No repository around the data directory lends its configuration (insteadOf,
            # sshCommand) to the check.
            env={"GIT_CEILING_DIRECTORIES": str(home.parent)},
            check=False,
        )
    except GitError as error:
        return str(error)
    except OSError as error:
        return f"git ls-remote could not run: {error}"
    if result.returncode != 0:
        return f"git ls-remote failed: {summarize(result.stderr or result.stdout)}"
    return None
