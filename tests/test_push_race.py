"""A push that loses the race for the branch at the remote's ref update (another push landed
while ours ran its hooks) is someone else's push first: fetch and apply again, not a 502."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from server.repo.git import NonFastForward
from server.repo.git import PushRejected
from server.repo.manifest_repo import ManifestRepo
from testkit.remote import Remote
from testkit.remote import git
from testkit.server import Server
from testkit.server import unique_app

AUTHOR = ("kuberpult", "kuberpult@example.com")


def race_next_push(remote: Remote, tmp: Path) -> str:
    """Make the next push to ``remote`` lose its race: while it runs its pre-receive hook,
    the branch moves to another commit (as another pusher's would). Returns that commit."""
    start = remote.head()
    assert start is not None
    other = remote.push_files(tmp, {"foreign.txt": "another pusher\n"}, "the other push")
    git("update-ref", "refs/heads/other", other, cwd=remote.path)
    git("update-ref", "refs/heads/main", start, cwd=remote.path)
    hook = remote.path / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\ncat >/dev/null\nrm -f hooks/pre-receive\n"
        "env -u GIT_QUARANTINE_PATH git update-ref refs/heads/main refs/heads/other\n"
    )
    hook.chmod(0o755)
    return other


def committed_clone(remote: Remote, tmp: Path) -> ManifestRepo:
    repo = ManifestRepo(tmp / "clone", remote.url, "main", tmp / "home")
    repo.sync(30)
    path = repo.tree.write(("files", "ours"), b"ours\n")
    assert path
    stream = repo.commits(AUTHOR)
    stream.add("ours\n", AUTHOR, [path])
    stream.finish()
    return repo


def test_losing_the_race_at_the_ref_update_is_a_non_fast_forward(
    bare_remote: Remote, tmp_path: Path
) -> None:
    bare_remote.push_files(tmp_path, {"README.md": "manifests\n"}, "initial")
    repo = committed_clone(bare_remote, tmp_path)
    other = race_next_push(bare_remote, tmp_path)
    with pytest.raises(NonFastForward):
        repo.push(30)
    assert bare_remote.head() == other


def test_a_hook_that_refuses_is_still_a_rejection(bare_remote: Remote, tmp_path: Path) -> None:
    bare_remote.push_files(tmp_path, {"README.md": "manifests\n"}, "initial")
    repo = committed_clone(bare_remote, tmp_path)
    head = bare_remote.head()
    hook = bare_remote.path / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        "echo \"cannot lock ref 'refs/heads/main': is at $(printf 1%.0s $(seq 40)) but "
        'expected $(printf 2%.0s $(seq 40))" >&2\n'
        "exit 1\n"
    )
    hook.chmod(0o755)
    # A hook may print git's own words for the race: its refusal is still a refusal.
    with pytest.raises(PushRejected, match="but expected"):
        repo.push(30)
    assert bare_remote.head() == head


def test_a_release_that_loses_the_race_lands_after_the_other_push(
    start_server: Callable[..., Server], bare_remote: Remote, tmp_path: Path
) -> None:
    bare_remote.push_files(tmp_path, {"README.md": "manifests\n"}, "initial")
    server = start_server(bare_remote, KUBERPULT_RECOVERY_INTERVAL="0")
    other = race_next_push(bare_remote, tmp_path)
    app = unique_app()
    response = server.release(app, {"development": b"kind: A\n"})
    assert response.status_code == 201, response.text
    assert bare_remote.exists(f"applications/{app}/releases/1/environments/development")
    assert bare_remote.exists("foreign.txt")
    git("merge-base", "--is-ancestor", other, "main", cwd=bare_remote.path)
    assert not (bare_remote.path / "hooks" / "pre-receive").exists()  # the race happened
