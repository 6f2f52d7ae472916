"""Attacks 1 and 11: a release without the credential its configuration asks for.

Every refusal is checked twice: the status, and that neither the remote nor the store moved.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from testkit.remote import Remote
from testkit.remote import make_bare_remote
from testkit.server import Server
from testkit.server import unique_app
from tests.gpg_keys import Keys
from tests.oidc_provider import Provider
from tests.security.attack import GITHUB_AUDIENCE
from tests.security.attack import bearer
from tests.security.attack import github_settings
from tests.security.attack import nothing_moves
from tests.security.attack import seed

MANIFEST = b"kind: ConfigMap\n"


@pytest.fixture
def github_only(tmp_path: Path, github: Provider, start_server) -> tuple[Server, Remote]:
    """Only the GitHub Actions policy: no Dex, no keyring."""
    remote = make_bare_remote(tmp_path / "remote.git")
    seed(remote, tmp_path)
    rules: list[dict[str, object]] = [
        {"repository": "acme/pay", "applications": ["pay"], "environments": ["development"]}
    ]
    return start_server(remote, **github_settings(tmp_path, github, rules)), remote


@pytest.mark.parametrize("path", ["/release", "/api/release"])
def test_github_policy_alone_leaves_no_release_endpoint_open(
    github_only: tuple[Server, Remote], path: str
) -> None:
    server, remote = github_only
    with nothing_moves(server, remote):
        response = server.release("pay", {"development": MANIFEST}, path=path)
    assert response.status_code == 401, response.text
    assert "GitHub Actions token" in response.json()["error"]["message"]


def test_the_github_twin_with_a_token_releases(
    github_only: tuple[Server, Remote], github: Provider
) -> None:
    server, remote = github_only
    token = github.token(audience=GITHUB_AUDIENCE, repository="acme/pay")
    response = server.release(
        "pay", {"development": MANIFEST}, path="/release", headers=bearer(token)
    )
    assert response.status_code == 201, response.text
    assert remote.exists("applications/pay/releases/1")


@pytest.fixture
def keyring_only(tmp_path: Path, gpg_keys: Keys, start_server) -> tuple[Server, Remote]:
    """A team with a PGP keyring and no Dex (the Go client posts to /api/release)."""
    remote = make_bare_remote(tmp_path / "remote.git")
    seed(remote, tmp_path)
    server = start_server(remote, KUBERPULT_PGP_KEY_RING_PATH=str(gpg_keys.keyring))
    return server, remote


def test_signatures_are_the_credential_on_api_release(
    keyring_only: tuple[Server, Remote], gpg_keys: Keys
) -> None:
    server, remote = keyring_only
    app = unique_app()
    signature = gpg_keys.sign("trusted", MANIFEST)
    response = server.release(
        app, {"development": MANIFEST}, signatures=[("development", signature)]
    )
    assert response.status_code == 201, response.text
    assert remote.exists(f"applications/{app}/releases/1")


@pytest.mark.parametrize("path", ["/api/release", "/release"])
def test_unsigned_releases_are_refused_with_a_keyring(
    keyring_only: tuple[Server, Remote], path: str
) -> None:
    server, remote = keyring_only
    with nothing_moves(server, remote):
        response = server.release(unique_app(), {"development": MANIFEST}, path=path)
    # /api/release: no credential at all (401); /release keeps Kuberpult's 400 for a
    # missing signature.
    assert response.status_code == (401 if path == "/api/release" else 400), response.text
    assert "signature" in response.json()["error"]["message"]


def test_a_bad_signature_on_api_release_is_refused(
    keyring_only: tuple[Server, Remote], gpg_keys: Keys
) -> None:
    server, remote = keyring_only
    foreign = gpg_keys.sign("unknown", MANIFEST)
    expired = gpg_keys.sign("expired", MANIFEST)
    with nothing_moves(server, remote):
        unknown = server.release(
            unique_app(), {"development": MANIFEST}, signatures=[("development", foreign)]
        )
        bad = server.release(
            unique_app(), {"development": MANIFEST}, signatures=[("development", expired)]
        )
        other_bytes = server.release(
            unique_app(),
            {"development": b"kind: Secret\n"},
            signatures=[("development", gpg_keys.sign("trusted", MANIFEST))],
        )
    assert (unknown.status_code, bad.status_code, other_bytes.status_code) == (400, 400, 400)


def test_reads_and_locks_in_a_keyring_only_setup_name_the_setting(
    keyring_only: tuple[Server, Remote],
) -> None:
    server, remote = keyring_only
    with nothing_moves(server, remote):
        read = requests.get(server.url + "/api/applications", timeout=10)
        page = requests.get(server.url + "/", timeout=10)
        lock = requests.put(
            server.url + "/environments/development/locks/freeze", json={"message": "x"}, timeout=10
        )
    assert (read.status_code, page.status_code, lock.status_code) == (401, 401, 401)
    assert "KUBERPULT_OPEN_READS" in read.json()["error"]["message"]
    assert "KUBERPULT_DEX_ENABLED" in lock.json()["error"]["message"]


def test_open_reads_opens_reads_only(
    tmp_path: Path, gpg_keys: Keys, start_server, bare_remote: Remote
) -> None:
    seed(bare_remote, tmp_path)
    server = start_server(
        bare_remote,
        KUBERPULT_PGP_KEY_RING_PATH=str(gpg_keys.keyring),
        KUBERPULT_OPEN_READS="true",
    )
    assert requests.get(server.url + "/api/applications", timeout=10).status_code == 200
    with nothing_moves(server, bare_remote):
        release = server.release(unique_app(), {"development": MANIFEST})
        lock = requests.put(
            server.url + "/environments/development/locks/freeze", json={"message": "x"}, timeout=10
        )
    assert (release.status_code, lock.status_code) == (401, 401)


@pytest.mark.parametrize("path", ["/release", "/api/release", "/api/applications"])
def test_no_authentication_and_no_opt_out_is_closed(
    start_server, bare_remote: Remote, path: str
) -> None:
    server = start_server(bare_remote, KUBERPULT_API_ENABLE_DESPITE_NO_AUTH="false")
    with nothing_moves(server, bare_remote):
        if path == "/api/applications":
            response = requests.get(server.url + path, timeout=10)
        else:
            response = server.release(unique_app(), path=path)
    assert response.status_code == 401
    assert "KUBERPULT_" in response.json()["error"]["message"]


SECRET_MANIFEST = b"kind: Secret\nstringData:\n  password: hunter2-TOPSECRET\n"


@pytest.mark.parametrize("open_reads", [False, True])
def test_a_conflict_shows_the_stored_release_only_to_a_reader(
    tmp_path: Path, gpg_keys: Keys, start_server, bare_remote: Remote, open_reads: bool
) -> None:
    # A signature authenticates a release, not a read: any signed manifest (from some CI
    # log) must not turn the 409 diff into a read of another application's release.
    seed(bare_remote, tmp_path)
    server = start_server(
        bare_remote,
        KUBERPULT_PGP_KEY_RING_PATH=str(gpg_keys.keyring),
        KUBERPULT_OPEN_READS=str(open_reads).lower(),
    )
    app = unique_app()
    owner = server.release(
        app,
        {"development": SECRET_MANIFEST},
        fields={"version": "7"},
        signatures=[("development", gpg_keys.sign("trusted", SECRET_MANIFEST))],
    )
    assert owner.status_code == 201, owner.text
    with nothing_moves(server, bare_remote):
        probe = server.release(
            app,
            {"development": MANIFEST},
            fields={"version": "7"},
            signatures=[("development", gpg_keys.sign("trusted", MANIFEST))],
        )
    assert probe.status_code == 409
    assert probe.json()["AlreadyExistsDifferent"]["first_differing_field"] == 6
    assert ("hunter2-TOPSECRET" in probe.text) is open_reads


def test_an_unauthenticated_body_is_refused_before_its_yaml_is_parsed(
    keyring_only: tuple[Server, Remote], gpg_keys: Keys
) -> None:
    server, remote = keyring_only
    broken = b"a: [unclosed\n"
    with nothing_moves(server, remote):
        unsigned = server.release(unique_app(), {"development": broken})
        foreign = server.release(
            unique_app(),
            {"development": broken},
            signatures=[("development", gpg_keys.sign("unknown", broken))],
        )
    # Refused for the credential, not for the YAML: the parser never ran for them.
    assert unsigned.status_code == 401
    assert foreign.status_code == 400
    assert "signature" in foreign.json()["error"]["message"]
    signed = server.release(
        unique_app(),
        {"development": broken},
        signatures=[("development", gpg_keys.sign("trusted", broken))],
    )
    assert signed.status_code == 400
    assert "not valid YAML" in signed.json()["error"]["message"]


def test_a_text_mode_signature_is_refused(
    keyring_only: tuple[Server, Remote], gpg_keys: Keys
) -> None:
    server, remote = keyring_only
    text_mode = gpg_keys.gpg(
        "--local-user",
        gpg_keys.fingerprints["trusted"],
        "--textmode",
        "--armor",
        "--detach-sign",
        data=MANIFEST,
    )
    with nothing_moves(server, remote):
        response = server.release(
            unique_app(),
            {"development": MANIFEST.replace(b"\n", b"\r\n")},
            signatures=[("development", text_mode)],
        )
    assert response.status_code == 400
    assert "signature type 0x01" in response.json()["error"]["message"]
