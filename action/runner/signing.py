"""Signing manifests with the workflow's private key, in a GnuPG home of its own.

The key (armored, or base64 of armored or binary) is imported in batch mode into a fresh
GNUPGHOME (0700) under ``RUNNER_TEMP``; each manifest gets an ASCII-armored detached signature
over its exact bytes, the passphrase going to gpg on stdin (loopback pinentry). The home and
its agent are removed whatever happens.
"""

from __future__ import annotations

import base64
import binascii
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from action.runner.github import ActionFailure
from action.runner.github import mask

GPG_TIMEOUT = 60


def decode_key(key: str) -> bytes:
    """The key's bytes: as given when armored, else base64-decoded."""
    text = key.strip()
    if text.startswith("-----BEGIN"):
        return text.encode() + b"\n"
    try:
        decoded = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ActionFailure(
            "gpg-private-key is neither an ASCII-armored key (-----BEGIN PGP PRIVATE KEY "
            "BLOCK-----) nor base64 of one"
        ) from None
    # The input itself is masked already; what was derived from it must be too, before
    # anything (gpg's messages, a traceback) could print it: the armored text inside, and
    # the key as one unwrapped line of base64.
    if decoded.lstrip().startswith(b"-----BEGIN"):
        mask(decoded.decode("ascii", "replace"))
    mask(base64.b64encode(decoded).decode())
    return decoded


class Signer:
    """Signs with the one secret key imported into its private home."""

    def __init__(self, home: Path, passphrase: str) -> None:
        self.home = home
        self.passphrase = passphrase

    def _gpg(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["gpg", "--homedir", str(self.home), "--batch", "--yes", "--no-tty", *args],
            input=stdin,
            capture_output=True,
            timeout=GPG_TIMEOUT,
            check=False,
        )

    def import_key(self, key: bytes) -> str:
        """Import the secret key; return its fingerprint."""
        result = self._gpg("--import", stdin=key)
        listing = self._gpg("--with-colons", "--list-secret-keys").stdout.decode()
        fingerprints = [
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        ]
        if result.returncode != 0 or not fingerprints:
            raise ActionFailure(
                "gpg could not import gpg-private-key as a secret key: "
                + (result.stderr.decode(errors="replace").strip() or "no secret key in it")
            )
        return fingerprints[0]

    def sign(self, content: bytes, fingerprint: str) -> bytes:
        """An ASCII-armored detached signature over ``content``."""
        with tempfile.TemporaryDirectory(dir=self.home) as scratch:
            source = Path(scratch) / "manifest"
            source.write_bytes(content)
            result = self._gpg(
                "--pinentry-mode",
                "loopback",
                "--passphrase-fd",
                "0",
                "--armor",
                "--detach-sign",
                "--local-user",
                fingerprint,
                "--output",
                "-",
                str(source),
                stdin=self.passphrase.encode() + b"\n",
            )
        if result.returncode != 0 or b"BEGIN PGP SIGNATURE" not in result.stdout:
            raise ActionFailure(
                "gpg could not sign the manifests (is gpg-passphrase right?): "
                + result.stderr.decode(errors="replace").strip()
            )
        return result.stdout


@contextmanager
def signer(key: str, passphrase: str, temp_root: Path) -> Iterator[tuple[Signer, str]]:
    """A ``Signer`` with ``key`` imported, and its fingerprint; the home is removed after."""
    # gpg-agent's socket lives in the home and socket paths are limited to ~100 bytes.
    base = temp_root if len(str(temp_root)) < 60 else Path(tempfile.gettempdir())
    home = Path(tempfile.mkdtemp(prefix="kuberpult-gnupg-", dir=base))
    home.chmod(0o700)
    try:
        active = Signer(home, passphrase)
        yield active, active.import_key(decode_key(key))
    finally:
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
            capture_output=True,
            timeout=GPG_TIMEOUT,
            check=False,
        )
        shutil.rmtree(home, ignore_errors=True)
