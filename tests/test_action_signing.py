"""The action's signing with real gpg: keys with a passphrase, armored and base64."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from action.runner.github import ActionFailure
from action.runner.signing import decode_key
from action.runner.signing import signer
from testkit.server import stop_gpg_agent

PASSPHRASE = "correct horse; battery $(staple)"


@dataclass
class SecretKey:
    armored: str
    public: bytes
    home: Path


def make_secret_key(base: Path) -> SecretKey:
    """A passphrase-protected key, exported as the workflow's secret would hold it."""
    home = base / "ci-key-home"
    home.mkdir(mode=0o700)
    common = [
        "gpg",
        "--homedir",
        str(home),
        "--batch",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        PASSPHRASE,
    ]
    subprocess.run(
        [*common, "--quick-gen-key", "CI Bot <ci@example.com>", "ed25519", "sign", "never"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    armored = subprocess.run(
        [*common, "--armor", "--export-secret-keys"], check=True, capture_output=True, timeout=60
    ).stdout.decode()
    public = subprocess.run(
        [*common, "--armor", "--export"], check=True, capture_output=True, timeout=60
    ).stdout
    return SecretKey(armored, public, home)


@pytest.fixture(scope="module")
def secret_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecretKey]:
    key = make_secret_key(tmp_path_factory.mktemp("ci-key"))
    yield key
    stop_gpg_agent(key.home)


def verifies(public: bytes, content: bytes, signature: bytes, base: Path) -> bool:
    home = base / "verifier"
    home.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(
        ["gpg", "--batch", "--import"],
        input=public,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    (base / "content").write_bytes(content)
    (base / "content.asc").write_bytes(signature)
    result = subprocess.run(
        ["gpg", "--batch", "--verify", str(base / "content.asc"), str(base / "content")],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    stop_gpg_agent(home)
    return result.returncode == 0


@pytest.mark.parametrize("encoding", ["armored", "base64"])
def test_signatures_verify_against_the_public_key(
    secret_key: SecretKey, tmp_path: Path, encoding: str
) -> None:
    key = secret_key.armored
    if encoding == "base64":
        key = base64.b64encode(key.encode()).decode()
    content = b"kind: Deployment\n"
    with signer(key, PASSPHRASE, tmp_path) as (active, fingerprint):
        signature = active.sign(content, fingerprint)
        home = active.home
        assert (home.stat().st_mode & 0o777) == 0o700
    assert signature.startswith(b"-----BEGIN PGP SIGNATURE-----")
    assert verifies(secret_key.public, content, signature, tmp_path)
    assert not verifies(secret_key.public, content + b"x", signature, tmp_path)
    assert not home.exists()


def test_a_wrong_passphrase_fails_clearly(secret_key: SecretKey, tmp_path: Path) -> None:
    with pytest.raises(ActionFailure, match="is gpg-passphrase right"):
        with signer(secret_key.armored, "wrong", tmp_path) as (active, fingerprint):
            active.sign(b"x", fingerprint)


@pytest.mark.parametrize("key", ["not a key at all!", base64.b64encode(b"garbage").decode()])
def test_a_bad_key_fails_clearly(key: str, tmp_path: Path) -> None:
    with pytest.raises(ActionFailure, match="gpg-private-key"):
        with signer(key, "", tmp_path):
            pass


def test_a_key_given_as_base64_has_what_it_decodes_to_masked(
    secret_key: SecretKey, capsys: pytest.CaptureFixture[str]
) -> None:
    # The runner masks the input as given (base64); the armored key inside it is a secret
    # the Action derives, and must be masked too before gpg could echo any of it.
    wrapped = base64.encodebytes(secret_key.armored.encode()).decode()  # 76-column lines
    decode_key(wrapped)
    masked = {
        line.removeprefix("::add-mask::")
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("::add-mask::")
    }
    body = [line.strip() for line in secret_key.armored.splitlines() if len(line.strip()) > 20]
    assert body and all(line in masked for line in body)
    assert base64.b64encode(secret_key.armored.encode()).decode() in masked


def test_an_armored_key_is_not_decoded_and_adds_no_mask(
    secret_key: SecretKey, capsys: pytest.CaptureFixture[str]
) -> None:
    assert decode_key(secret_key.armored).startswith(b"-----BEGIN PGP PRIVATE KEY BLOCK-----")
    assert capsys.readouterr().out == ""  # the input itself was masked by the caller
