"""End to end: the client's subcommands after a release (release-train, deploy, group locks,
the commit reads, delete-environment) against a real server, with Kuberpult's exit codes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.remote import Remote
from testkit.remote import make_bare_remote
from testkit.server import Server
from tests.test_client_http import run_client

SHA = "c0ffee" + "0" * 34
STAGE = '{"upstream":{"environment":"dev"},"environmentGroup":"stage"}'
CONFIGS = {
    "environments/dev/config.json": '{"upstream":{"latest":true}}',
    "environments/staging/config.json": STAGE,
    "environments/staging-eu/config.json": STAGE,
    "environments/scratch/config.json": "{}",
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Remote]]:
    base = tmp_path_factory.mktemp("client-promotion")
    remote = make_bare_remote(base / "remote.git")
    remote.push_files(base, CONFIGS)
    server = Server(
        base / "data",
        {"KUBERPULT_API_ENABLE_DESPITE_NO_AUTH": "true", "KUBERPULT_GIT_URL": remote.url},
    ).start()
    envs = ("dev", "staging", "staging-eu")
    for version in (1, 2):
        answer = server.release(
            "shop",
            {env: f"v: {version}\n" for env in envs},
            fields={"version": str(version), "source_commit_id": SHA if version == 1 else "d" * 40},
        )
        assert answer.status_code == 201, answer.text
    yield server, remote
    server.stop()


def client(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return run_client("--url", server.url, "--retries", "1", *args)


def version_in(remote: Remote, env: str) -> int:
    return int(
        remote.read(f"environments/{env}/applications/shop/version").decode().rsplit("/", 1)[1]
    )


def test_release_train_deploy_and_the_commit_reads(setup, tmp_path: Path) -> None:
    server, remote = setup
    result = client(
        server, "deploy", "--environment", "staging", "--application", "shop", "--version", "1"
    )
    assert result.returncode == 0, result.stderr
    assert "Success: 200" in result.stderr and version_in(remote, "staging") == 1

    out = tmp_path / "deployments.json"
    result = client(server, "get-commit-deployments", "--commit", SHA, "--out", str(out))
    assert result.returncode == 0, result.stderr
    status = json.loads(out.read_text())["deploymentStatus"]["shop"]["deploymentStatus"]
    assert status["staging"] == "DEPLOYED" and status["scratch"] == "UNKNOWN"

    result = client(server, "release-train", "--target-environment", "staging")
    assert result.returncode == 0, result.stderr
    assert version_in(remote, "staging") == 2
    result = client(
        server, "release-train", "--target-environment", "stage", "--use_env_group_target"
    )
    assert result.returncode == 0, result.stderr
    assert version_in(remote, "staging-eu") == 2

    result = client(
        server, "get-deployment-commit", "--environment", "staging", "--application", "shop"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"commit_id": "d" * 40}
    result = client(server, "get-commit-deployments", "--commit", SHA)
    assert (
        json.loads(result.stdout)["deploymentStatus"]["shop"]["deploymentStatus"]["dev"]
        == "DEPLOYED"
    )


def test_group_locks_and_delete_environment(setup) -> None:
    server, remote = setup
    lock = ("--environment-group", "stage", "--lockID", "freeze")
    result = client(server, "create-group-lock", *lock, "--message", "release freeze")
    assert result.returncode == 0, result.stderr
    assert remote.read("environments/staging-eu/locks/freeze/message") == b"release freeze"
    assert client(server, "delete-group-lock", *lock).returncode == 0
    assert not remote.exists("environments/staging/locks/freeze")
    assert client(server, "delete-environment", "--environment", "scratch").returncode == 0
    assert not remote.exists("environments/scratch/config.json")


def test_a_refusal_is_exit_1_with_the_servers_answer(setup) -> None:
    server, remote = setup
    head = remote.head()
    result = client(server, "release-train", "--target-environment", "nowhere")
    assert result.returncode == 1
    assert "error on release train" in result.stderr and "404" in result.stderr
    result = client(server, "delete-environment", "--environment", "dev")
    assert result.returncode == 1 and "deployed there" in result.stderr
    result = client(server, "get-commit-deployments", "--commit", "e" * 40)
    assert result.returncode == 1 and result.stdout == ""
    assert remote.head() == head
