"""End to end: PGP-signed manifests on /release with a real keyring and real gpg."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.remote import Remote
from testkit.remote import make_bare_remote
from testkit.server import SERVER_BIN
from testkit.server import Server
from testkit.server import unique_app
from tests.gpg_keys import Keys

MANIFEST = b"apiVersion: v1\nkind: ConfigMap\n"


@pytest.fixture(scope="module")
def signed(
    tmp_path_factory: pytest.TempPathFactory, gpg_keys: Keys
) -> Iterator[tuple[Server, Remote]]:
    """A server that requires signatures from the test keyring on /release."""
    base = tmp_path_factory.mktemp("signed")
    remote = make_bare_remote(base / "remote.git")
    server = Server(
        base / "data",
        {
            "KUBERPULT_GIT_URL": remote.url,
            "KUBERPULT_PGP_KEY_RING_PATH": str(gpg_keys.keyring),
        },
    ).start()
    yield server, remote
    server.stop()


def test_a_good_signature_releases(signed: tuple[Server, Remote], gpg_keys: Keys) -> None:
    server, remote = signed
    app = unique_app()
    signature = gpg_keys.sign("trusted", MANIFEST)
    response = server.release(
        app, {"development": MANIFEST}, path="/release", signatures=[("development", signature)]
    )
    assert response.status_code == 201, response.text
    assert remote.exists(f"applications/{app}/releases/1")


def test_a_subkey_signature_counts_for_its_primary(
    signed: tuple[Server, Remote], gpg_keys: Keys
) -> None:
    server, _ = signed
    signature = gpg_keys.sign("subkey", MANIFEST)
    response = server.release(
        unique_app(),
        {"development": MANIFEST},
        path="/release",
        signatures=[("development", signature)],
    )
    assert response.status_code == 201, response.text


def test_an_unknown_key_beside_a_good_one_is_skipped(
    signed: tuple[Server, Remote], gpg_keys: Keys
) -> None:
    server, _ = signed
    signatures = [
        ("development", gpg_keys.sign("unknown", MANIFEST)),
        ("development", gpg_keys.sign("trusted", MANIFEST)),
    ]
    response = server.release(
        unique_app(), {"development": MANIFEST}, path="/release", signatures=signatures
    )
    assert response.status_code == 201, response.text


NOT_FOUND = "signature is invalid or it was not found for environment development"
INVALID = "Internal: Invalid Signature for manifests[development]: "


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", NOT_FOUND),
        ("other-bytes", INVALID + "signature bad"),
        ("garbage", INVALID + "the signature is not an ASCII-armored detached signature"),
        ("armored-garbage", INVALID),
        ("binary", INVALID + "the signature is not an ASCII-armored detached signature"),
        ("unknown-only", NOT_FOUND),
        ("bad-beside-good", INVALID + "signature bad"),
        ("expired", INVALID + "signing key has expired"),
        ("revoked", INVALID + "signing key was revoked"),
        ("other-environment", NOT_FOUND),
    ],
)
def test_bad_signatures_are_400_naming_the_environment(
    signed: tuple[Server, Remote], gpg_keys: Keys, case: str, message: str
) -> None:
    server, remote = signed
    good = gpg_keys.sign("trusted", MANIFEST)
    manifests = {"development": MANIFEST}
    signatures = {
        "missing": [],
        "other-bytes": [("development", gpg_keys.sign("trusted", b"other bytes"))],
        "garbage": [("development", b"not valid!")],
        "armored-garbage": [
            ("development", b"-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n")
        ],
        "binary": [("development", gpg_keys.sign("trusted", MANIFEST, armor=False))],
        "unknown-only": [("development", gpg_keys.sign("unknown", MANIFEST))],
        "bad-beside-good": [
            ("development", good),
            ("development", gpg_keys.sign("trusted", b"tampered")),
        ],
        "expired": [("development", gpg_keys.sign("expired", MANIFEST))],
        "revoked": [("development", gpg_keys.sign("revoked", MANIFEST))],
        # A valid signature, but for the staging manifest: it does not count for development.
        "other-environment": [("staging", gpg_keys.sign("trusted", b"kind: Other\n"))],
    }[case]
    if case == "other-environment":
        manifests["staging"] = b"kind: Other\n"
    head = remote.head()
    app = unique_app()
    response = server.release(app, manifests, path="/release", signatures=signatures)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["message"].startswith(message)
    assert error["field"] == "signatures[development]"
    assert remote.head() == head


def test_signatures_are_the_credential_of_api_release(
    signed: tuple[Server, Remote], gpg_keys: Keys
) -> None:
    server, _ = signed
    # Without Dex, the keyring's signatures are what authenticates /api/release.
    assert server.release(unique_app(), {"development": MANIFEST}).status_code == 401
    bad = server.release(
        unique_app(),
        {"development": MANIFEST},
        signatures=[("development", gpg_keys.sign("trusted", b"x"))],
    )
    assert bad.status_code == 400
    good = server.release(
        unique_app(),
        {"development": MANIFEST},
        signatures=[("development", gpg_keys.sign("trusted", MANIFEST))],
    )
    assert good.status_code == 201


def test_the_keyring_is_imported_into_a_private_home(signed: tuple[Server, Remote]) -> None:
    server, _ = signed
    homes = server.data_dir / "gnupg"
    assert (homes.stat().st_mode & 0o777) == 0o700
    assert any(path.is_dir() and (path / "imported").exists() for path in homes.iterdir())


def test_a_keyring_without_keys_stops_the_server(tmp_path: Path) -> None:
    empty = tmp_path / "empty.asc"
    empty.write_text("no keys here\n")
    result = subprocess.run(
        [str(SERVER_BIN)],
        env={
            "PATH": "/usr/bin:/bin",
            "KUBERPULT_DATA_DIR": str(tmp_path / "data"),
            "KUBERPULT_PGP_KEY_RING_PATH": str(empty),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "KUBERPULT_PGP_KEY_RING_PATH" in result.stderr
