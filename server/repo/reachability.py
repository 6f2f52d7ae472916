"""Whether the remote answers: probed at start and by /readyz, and remembered in a store view
so every worker answers alike."""

from __future__ import annotations

import time

from server.config import Config
from server.repo.credentials import GitCredentials
from server.repo.git import Git
from server.repo.git import GitError
from server.repo.git import summarize


def remote_view_name(config: Config) -> str:
    """The store view that says whether the remote answered since this replica started
    (/readyz); one per replica, as each reaches the remote on its own."""
    return f"remote {config.replica_name}"


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
    git = Git(home, home, GitCredentials.for_config(config))
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
