"""How git authenticates to the remote: a deploy key with a pinned host key, or a token
file read by a credential helper. Secrets stay in their files; nothing here logs them."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from server.config import Config


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

    @classmethod
    def for_config(cls, config: Config) -> GitCredentials:
        """The credentials the configuration names for its remote."""
        return cls(
            url=config.git_url,
            ssh_key=config.git_ssh_key_path,
            known_hosts=config.git_known_hosts_path,
            token_file=config.git_token_file,
            username=config.git_username,
        )

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
