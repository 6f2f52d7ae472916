"""★ Replay-proof signatures: with KUBERPULT_SIGNATURE_MODE=envelope each signature signs the
release's envelope (application, environment, version, manifest digest). A signature lifted
from one release and sent with another is refused with a 400 that says why, and nothing moves."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from server.auth.envelope import envelope
from testkit.remote import Remote
from testkit.remote import make_bare_remote
from testkit.server import Server
from testkit.server import unique_app
from tests.gpg_keys import Keys
from tests.security.attack import nothing_moves
from tests.security.attack import seed

MANIFEST = b"apiVersion: v1\nkind: ConfigMap\n"


@pytest.fixture(scope="module")
def envelope_server(
    tmp_path_factory: pytest.TempPathFactory, gpg_keys: Keys
) -> Iterator[tuple[Server, Remote]]:
    base = tmp_path_factory.mktemp("envelope")
    remote = make_bare_remote(base / "remote.git")
    seed(remote, base)
    server = Server(
        base / "data",
        {
            "KUBERPULT_GIT_URL": remote.url,
            "KUBERPULT_PGP_KEY_RING_PATH": str(gpg_keys.keyring),
            "KUBERPULT_SIGNATURE_MODE": "envelope",
        },
    ).start()
    yield server, remote
    server.stop()


def send(server: Server, app: str, env: str, version: int, signature: bytes) -> requests.Response:
    return server.release(
        app,
        {env: MANIFEST},
        path="/release",
        fields={"version": str(version)},
        signatures=[(env, signature)],
    )


def test_a_signed_envelope_releases(envelope_server: tuple[Server, Remote], gpg_keys: Keys) -> None:
    server, remote = envelope_server
    app = unique_app()
    signature = gpg_keys.sign("trusted", envelope(app, "development", 1, MANIFEST))
    response = send(server, app, "development", 1, signature)
    assert response.status_code == 201, response.text
    assert remote.exists(f"applications/{app}/releases/1")
    # The same request again is the same release.
    assert send(server, app, "development", 1, signature).status_code == 200


@pytest.mark.parametrize(
    "replayed_as", ["another application", "another environment", "another version"]
)
def test_a_signature_replayed_for_another_release_is_refused(
    envelope_server: tuple[Server, Remote], gpg_keys: Keys, replayed_as: str
) -> None:
    server, remote = envelope_server
    app = unique_app()
    signature = gpg_keys.sign("trusted", envelope(app, "development", 1, MANIFEST))
    target = {
        "another application": (unique_app(), "development", 1),
        "another environment": (app, "staging", 1),
        "another version": (app, "development", 2),
    }[replayed_as]
    with nothing_moves(server, remote):
        response = send(server, *target, signature)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "envelope signatures only" in message
    assert "another application, environment or version" in message
    assert f"environment {target[1]!r}, version {target[2]}" in message


def test_a_signature_over_the_bytes_alone_is_refused_in_envelope_mode(
    envelope_server: tuple[Server, Remote], gpg_keys: Keys
) -> None:
    server, remote = envelope_server
    with nothing_moves(server, remote):
        response = send(server, unique_app(), "development", 1, gpg_keys.sign("trusted", MANIFEST))
    assert response.status_code == 400
    assert "over the manifest bytes alone" in response.json()["error"]["message"]


def test_an_envelope_release_needs_its_version(
    envelope_server: tuple[Server, Remote], gpg_keys: Keys
) -> None:
    server, remote = envelope_server
    app = unique_app()
    signature = gpg_keys.sign("trusted", envelope(app, "development", 1, MANIFEST))
    with nothing_moves(server, remote):
        response = server.release(
            app, {"development": MANIFEST}, path="/release", signatures=[("development", signature)]
        )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "version"


def test_the_envelope_format_is_the_documented_one() -> None:
    assert envelope("pay", "prod", 42, b"a: 1\n") == (
        b"kuberpult-lite envelope v1\n"
        b"application: pay\n"
        b"environment: prod\n"
        b"version: 42\n"
        b"manifest-sha256: 37b128c59f1f5097f73f82691cb519f1f568667faab5ced1b4ab979d36837eae\n"
    )


def test_the_client_builds_the_same_envelope_as_the_server() -> None:
    from action.envelope import envelope as client_envelope

    for args in (("pay", "prod", 42, b"a: 1\n"), ("a-b", "dev-1", 9223372036854775807, b"")):
        assert client_envelope(*args) == envelope(*args)
