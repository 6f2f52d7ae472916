"""Adoption: a manifest repository that Kuberpult (or anyone else) wrote is taken as it is:
its releases answer 200/409 and count for the next version; none is ever overwritten."""

from __future__ import annotations

import os
from pathlib import Path

import requests

from testkit.remote import Remote
from testkit.remote import git

PAY_V1 = b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: pay\n"


def write_kuberpult_repository(remote: Remote, tmp: Path) -> None:
    """The files Kuberpult v12 writes for `pay` version 1 deployed to development, an
    environment lock on staging, and commit data."""
    clone = tmp / "kuberpult-writer"
    git("init", "-q", "--initial-branch=main", str(clone), cwd=tmp)
    files: dict[str, str | bytes] = {
        "environments/development/config.json": '{"upstream":{"latest":true}}',
        "environments/staging/config.json": '{"upstream":{"environment":"development"}}',
        "environments/staging/locks/freeze/message": "code freeze",
        "environments/staging/locks/freeze/created_by_name": "Ops",
        "environments/staging/locks/freeze/created_by_email": "ops@example.com",
        "environments/staging/locks/freeze/created_at": "2026-01-02T03:04:05Z",
        "applications/pay/team": "payments",
        "applications/pay/releases/1/source_commit_id": "a" * 40,
        "applications/pay/releases/1/source_author": "Dev <dev@example.com>",
        "applications/pay/releases/1/source_message": "first release",
        "applications/pay/releases/1/display_version": "1.0.0",
        "applications/pay/releases/1/created_at": "2026-01-01T00:00:00Z",
        "applications/pay/releases/1/environments/development/manifests.yaml": PAY_V1,
        "environments/development/applications/pay/manifests/manifests.yaml": PAY_V1,
        "environments/development/applications/pay/deployed_by": "Dev",
        "environments/development/applications/pay/deployed_by_email": "dev@example.com",
        "environments/development/applications/pay/deployed_at_utc": (
            "2026-01-01 00:00:00 +0000 UTC"
        ),
        "commits/aa/" + "a" * 38 + "/source_message": "first release",
    }
    for path, content in files.items():
        target = clone / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    os.symlink(
        "../../../../applications/pay/releases/1",
        clone / "environments/development/applications/pay/version",
    )
    git("add", "-A", cwd=clone)
    git("commit", "-q", "-m", "written by Kuberpult", cwd=clone)
    git("push", "-q", remote.url, "HEAD:refs/heads/main", cwd=clone)


def test_a_kuberpult_repository_is_adopted_as_it_is(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    write_kuberpult_repository(bare_remote, tmp_path)
    server = start_server(bare_remote)
    head = bare_remote.head()

    same = server.release("pay", {"development": PAY_V1}, fields={"version": "1"})
    assert same.status_code == 200, same.text
    other = server.release("pay", {"development": b"kind: Other\n"}, fields={"version": "1"})
    assert other.status_code == 409, other.text
    assert bare_remote.head() == head  # release 1 was neither rewritten nor committed again

    receipt = requests.get(f"{server.url}/api/applications/pay/releases/1", timeout=10).json()
    assert receipt["state"] == "pushed"
    assert receipt["source_message"] == "first release"
    assert receipt["display_version"] == "1.0.0"

    following = server.release("pay", {"development": b"kind: Deployment\nv: 2\n"})
    assert following.status_code == 201, following.text
    assert following.headers["X-Release-Version"] == "2"
    assert (
        bare_remote.read("applications/pay/releases/1/environments/development/manifests.yaml")
        == PAY_V1
    )
    assert bare_remote.read("applications/pay/team") == b"payments"


def test_a_foreign_release_is_never_overwritten(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    write_kuberpult_repository(bare_remote, tmp_path)
    server = start_server(bare_remote)
    foreign = b"kind: Deployment\nfrom: someone-else\n"
    bare_remote.push_files(
        tmp_path, {"applications/pay/releases/5/environments/development/manifests.yaml": foreign}
    )
    ours = server.release(
        "pay", {"development": b"kind: Deployment\nours: 1\n"}, fields={"version": "5"}
    )
    assert ours.status_code == 409, ours.text
    assert "already exists in the manifest repository" in ours.json()["error"]["message"]
    path = "applications/pay/releases/5/environments/development/manifests.yaml"
    assert bare_remote.read(path) == foreign
    # The repository's release 5 is now known: the same content is 200, the next is 6.
    assert (
        server.release("pay", {"development": foreign}, fields={"version": "5"}).status_code == 200
    )
    following = server.release("pay", {"development": b"kind: Deployment\nv: 6\n"})
    assert following.headers["X-Release-Version"] == "6", following.text
