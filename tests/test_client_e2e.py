"""End to end: kuberpult-client against a real server (unsigned, signed, tokens, locks, dry run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.remote import Remote
from testkit.server import Server
from testkit.server import unique_app
from tests.gpg_keys import Keys
from tests.oidc_provider import Provider
from tests.test_client_http import run_client

LATEST = '{"upstream":{"latest":true}}'


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "development.yaml"
    path.write_bytes(b"kind: Deployment\nreplicas: 2\n")
    return path


def release_args(
    server: Server, app: str, manifest: Path, *extra: str, retries: int = 1
) -> list[str]:
    return [
        "--url",
        server.url,
        "--retries",
        str(retries),
        "release",
        "--application",
        app,
        "--environment",
        "development",
        "--manifest",
        str(manifest),
        *extra,
    ]


def test_an_unsigned_release_lands(start_server, bare_remote: Remote, manifest: Path) -> None:
    server = start_server(bare_remote)
    app = unique_app()
    result = run_client(
        *release_args(
            server,
            app,
            manifest,
            "--skip_signatures",
            "--version",
            "12",
            "--display_version",
            "1.2.0",
            "--source_commit_id",
            "b" * 40,
            "--source_author",
            "Jane <jane@example.com>",
        )
    )
    assert result.returncode == 0, result.stderr
    assert bare_remote.read(f"applications/{app}/releases/12/display_version") == b"1.2.0"
    assert (
        f"released version 12 of '{app}' in manifest-repo commit {bare_remote.head()}"
        in result.stderr
    )
    again = run_client(*release_args(server, app, manifest, "--skip_signatures", "--version", "12"))
    assert again.returncode == 0
    assert "Success: 200" in again.stderr


def test_a_conflicting_release_fails_once_with_the_servers_message(
    start_server, bare_remote: Remote, manifest: Path, tmp_path: Path
) -> None:
    server = start_server(bare_remote)
    app = unique_app()
    assert (
        run_client(
            *release_args(server, app, manifest, "--skip_signatures", "--version", "3")
        ).returncode
        == 0
    )
    other = tmp_path / "other.yaml"
    other.write_bytes(b"kind: Other\n")
    result = run_client(*release_args(server, app, other, "--skip_signatures", "--version", "3"))
    assert result.returncode == 1
    assert result.stderr.count("attempt ") == 1
    assert "409" in result.stderr and "different manifests" in result.stderr


def test_signed_releases_are_verified(
    start_server, bare_remote: Remote, manifest: Path, gpg_keys: Keys, tmp_path: Path
) -> None:
    server = start_server(bare_remote, KUBERPULT_PGP_KEY_RING_PATH=str(gpg_keys.keyring))
    good = tmp_path / "good.asc"
    good.write_bytes(gpg_keys.sign("trusted", manifest.read_bytes()))
    app = unique_app()
    result = run_client(*release_args(server, app, manifest, "--signature", str(good)))
    assert result.returncode == 0, result.stderr
    bad = tmp_path / "bad.asc"
    bad.write_bytes(gpg_keys.sign("trusted", b"something else"))
    refused = run_client(*release_args(server, unique_app(), manifest, "--signature", str(bad)))
    assert refused.returncode == 1
    assert "Invalid Signature for manifests[development]" in refused.stderr


@pytest.fixture
def token_server(start_server, bare_remote: Remote, tmp_path: Path, dex: Provider) -> Server:
    bare_remote.push_files(tmp_path, {"environments/development/config.json": LATEST})
    policy = tmp_path / "policy.csv"
    policy.write_text(
        "p, role:developer, CreateRelease, *:*, *, allow\n"
        "p, role:developer, DeployRelease, *:*, *, allow\n"
        "p, role:developer, CreateLock, *:*, *, allow\n"
        "p, role:developer, DeleteLock, *:*, *, allow\n"
        "g, developers, role:developer\ng, machines, role:developer\n"
    )
    server: Server = start_server(
        bare_remote,
        KUBERPULT_API_ENABLE_DESPITE_NO_AUTH="false",
        KUBERPULT_DEX_ENABLED="true",
        KUBERPULT_DEX_ISSUER_URL=dex.issuer,
        KUBERPULT_DEX_CLIENT_ID="kuberpult",
        KUBERPULT_DEX_RBAC_POLICY_PATH=str(policy),
    )
    return server


def test_a_dex_access_token_from_the_environment(
    token_server: Server, bare_remote: Remote, dex: Provider, manifest: Path
) -> None:
    token = dex.token(email="dev@example.com", name="Dev", groups="developers")
    app = unique_app()
    result = run_client(
        *release_args(token_server, app, manifest, "--use_dex_auth"),
        env={"KUBERPULT_DEX_ACCESS_TOKEN": token},
    )
    assert result.returncode == 0, result.stderr
    assert bare_remote.log("%an <%ae>")[0] == "Dev <dev@example.com>"
    without = run_client(*release_args(token_server, unique_app(), manifest, "--use_dex_auth"))
    assert without.returncode == 1
    assert "401" in without.stderr


def test_a_machine_token_by_client_credentials(
    token_server: Server, bare_remote: Remote, dex: Provider, manifest: Path
) -> None:
    app = unique_app()
    result = run_client(
        "--url",
        token_server.url,
        "--oauth_token_url",
        f"{dex.issuer}/token",
        "release",
        "--use_dex_auth",
        "--application",
        app,
        "--environment",
        "development",
        "--manifest",
        str(manifest),
        env={
            "KUBERPULT_OAUTH_CLIENT_ID": "ci-bot",
            "KUBERPULT_OAUTH_CLIENT_SECRET": "s3cret",
            "KUBERPULT_OAUTH_AUDIENCE": "kuberpult",
        },
    )
    assert result.returncode == 0, result.stderr
    assert bare_remote.log("%ae")[0] == "ci-bot@clients.example.com"
    assert "s3cret" not in result.stderr


def test_locks_through_the_client(token_server: Server, bare_remote: Remote, dex: Provider) -> None:
    env = {"KUBERPULT_DEX_ACCESS_TOKEN": dex.token(email="dev@example.com", groups="developers")}
    created = run_client(
        "--url",
        token_server.url,
        "create-env-lock",
        "--environment",
        "development",
        "--lockID",
        "freeze",
        "--message",
        "hold",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    assert bare_remote.read("environments/development/locks/freeze/message") == b"hold"
    app_lock = run_client(
        "--url",
        token_server.url,
        "create-app-lock",
        "--environment",
        "development",
        "--application",
        "web",
        "--lockID",
        "l2",
        "--message",
        "m",
        env=env,
    )
    assert app_lock.returncode == 0, app_lock.stderr
    deleted = run_client(
        "--url",
        token_server.url,
        "delete-env-lock",
        "--environment",
        "development",
        "--lockID",
        "freeze",
        env=env,
    )
    assert deleted.returncode == 0
    assert not bare_remote.exists("environments/development/locks/freeze")
    missing_env = run_client(
        "--url",
        token_server.url,
        "create-env-lock",
        "--environment",
        "nowhere",
        "--lockID",
        "x",
        env=env,
    )
    assert missing_env.returncode == 1
    assert "404" in missing_env.stderr


def test_dry_run_diffs_against_the_latest_release(
    start_server, bare_remote: Remote, manifest: Path, tmp_path: Path
) -> None:
    server = start_server(bare_remote)
    app = unique_app()
    first = run_client(*release_args(server, app, manifest, "--skip_signatures", "--dry-run"))
    assert first.returncode == 0, first.stderr
    assert "+replicas: 2" in first.stdout
    assert run_client(*release_args(server, app, manifest, "--skip_signatures")).returncode == 0
    changed = tmp_path / "changed.yaml"
    changed.write_bytes(b"kind: Deployment\nreplicas: 3\n")
    head = bare_remote.head()
    diff = run_client(*release_args(server, app, changed, "--skip_signatures", "--dry-run"))
    assert diff.returncode == 0
    assert "Diff for the manifest on environment 'development':" in diff.stdout
    assert "-replicas: 2" in diff.stdout and "+replicas: 3" in diff.stdout
    assert "This is a dry run" in diff.stderr
    assert bare_remote.head() == head
