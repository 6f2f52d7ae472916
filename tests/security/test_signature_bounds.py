"""Attack 8: the work one unauthenticated /release can cause is bounded: one gpg process per
environment, a cap on signature parts, parts that are not pure signatures refused before gpg,
and a gpg that hangs is killed."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import pytest

from server.auth import signatures
from server.auth.signatures import SignatureVerifier
from server.errors import Unavailable
from server.errors import ValidationError
from testkit.remote import Remote
from testkit.remote import make_bare_remote
from testkit.server import Server
from testkit.server import stop_gpg_agent
from testkit.server import unique_app
from tests.gpg_keys import Keys
from tests.security.attack import nothing_moves
from tests.security.attack import seed

MANIFEST = b"kind: ConfigMap\n"
REAL_GPG = "/usr/bin/gpg"


def gpg_shim(directory: Path, body: str) -> Path:
    """A ``gpg`` first on PATH that logs its arguments, then runs ``body``."""
    directory.mkdir(exist_ok=True)
    shim = directory / "gpg"
    shim.write_text(f'#!/bin/sh\necho "$*" >> "{directory}/calls"\n{body}\n')
    shim.chmod(0o755)
    return directory


def verify_calls(directory: Path) -> int:
    calls = directory / "calls"
    lines = calls.read_text().splitlines() if calls.exists() else []
    return sum("--verify" in line for line in lines)


@pytest.fixture
def counted(tmp_path: Path, gpg_keys: Keys, start_server) -> tuple[Server, Remote, Path]:
    """A keyring server whose gpg calls are counted."""
    shims = gpg_shim(tmp_path / "shims", f'exec {REAL_GPG} "$@"')
    remote = make_bare_remote(tmp_path / "remote.git")
    seed(remote, tmp_path)
    server = start_server(
        remote,
        KUBERPULT_PGP_KEY_RING_PATH=str(gpg_keys.keyring),
        PATH=f"{shims}:{os.environ['PATH']}",
    )
    return server, remote, shims


def test_every_part_of_an_environment_is_checked_by_one_gpg(
    counted: tuple[Server, Remote, Path], gpg_keys: Keys
) -> None:
    server, _, shims = counted
    parts = [gpg_keys.sign("unknown", MANIFEST) for _ in range(3)]
    parts.append(gpg_keys.sign("trusted", MANIFEST))
    before = verify_calls(shims)
    response = server.release(
        unique_app(),
        {"development": MANIFEST, "production": MANIFEST},
        path="/release",
        signatures=[(env, part) for env in ("development", "production") for part in parts],
    )
    assert response.status_code == 201, response.text
    assert verify_calls(shims) - before == 2


def test_too_many_signature_parts_are_refused_before_gpg(
    counted: tuple[Server, Remote, Path], gpg_keys: Keys
) -> None:
    server, remote, shims = counted
    part = gpg_keys.sign("trusted", MANIFEST)
    before = verify_calls(shims)
    with nothing_moves(server, remote):
        response = server.release(
            unique_app(),
            {"development": MANIFEST},
            path="/release",
            signatures=[("development", part)] * 240,
        )
    assert response.status_code == 400
    assert "at most 4 signatures" in response.json()["error"]["message"]
    assert verify_calls(shims) == before


def armored_signature(packets: bytes) -> bytes:
    """``packets`` dressed as an armored signature (what an attacker can send)."""
    body = base64.encodebytes(packets)
    return b"-----BEGIN PGP SIGNATURE-----\n\n" + body + b"-----END PGP SIGNATURE-----\n"


def test_parts_that_are_not_pure_signatures_are_refused_before_gpg(
    counted: tuple[Server, Remote, Path], gpg_keys: Keys
) -> None:
    server, remote, shims = counted
    public_key = gpg_keys.gpg("--export", gpg_keys.fingerprints["trusted"])
    signed_message = gpg_keys.gpg(
        "--local-user", gpg_keys.fingerprints["trusted"], "--sign", data=MANIFEST
    )
    good = gpg_keys.sign("trusted", MANIFEST)
    bad_parts = {
        "a key dressed as a signature": armored_signature(public_key),
        "a signed message": armored_signature(signed_message),
        "two armored blocks in one part": good + good,
        "not base64": b"-----BEGIN PGP SIGNATURE-----\n\n!!!!\n-----END PGP SIGNATURE-----\n",
    }
    before = verify_calls(shims)
    for name, part in bad_parts.items():
        with nothing_moves(server, remote):
            response = server.release(
                unique_app(),
                {"development": MANIFEST},
                path="/release",
                signatures=[("development", good), ("development", part)],
            )
        assert response.status_code == 400, name
    assert verify_calls(shims) == before


def test_a_gpg_that_hangs_is_killed_at_the_deadline(
    tmp_path: Path, gpg_keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = SignatureVerifier(gpg_keys.keyring, tmp_path / "homes")
    signature = gpg_keys.sign("trusted", MANIFEST)
    try:
        shims = gpg_shim(tmp_path / "shims", f'echo $$ > "{tmp_path}/pid"\nexec sleep 60')
        monkeypatch.setenv("PATH", f"{shims}:{os.environ['PATH']}")
        monkeypatch.setattr(signatures, "GPG_TIMEOUT", 1.0)
        started = time.monotonic()
        with pytest.raises(Unavailable):
            verifier.verify("development", MANIFEST, [signature])
        assert time.monotonic() - started < 10
        pid = int((tmp_path / "pid").read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # killed and reaped: nothing is left behind
    finally:
        stop_gpg_agent(verifier.home)


def test_the_verifier_refuses_a_bad_signature_next_to_a_good_one(
    tmp_path: Path, gpg_keys: Keys
) -> None:
    verifier = SignatureVerifier(gpg_keys.keyring, tmp_path / "homes")
    try:
        good = gpg_keys.sign("trusted", MANIFEST)
        assert verifier.verify("development", MANIFEST, [good]) == gpg_keys.fingerprints["trusted"]
        with pytest.raises(ValidationError):
            verifier.verify("development", MANIFEST, [good, gpg_keys.sign("revoked", MANIFEST)])
        with pytest.raises(ValidationError):
            verifier.verify("development", MANIFEST, [good, gpg_keys.sign("trusted", b"other")])
    finally:
        stop_gpg_agent(verifier.home)
