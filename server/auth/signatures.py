"""Detached PGP signatures over manifests, checked with python-gnupg against one keyring.

The keyring is imported into a private GNUPGHOME that holds nothing else, so "made by a known
key" means "made by a key of the configured keyring". Every signature is judged on gpg's
status lines, not on its exit code (gpg exits 0 for an expired or revoked key).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import gnupg

from server.errors import Unavailable
from server.errors import ValidationError

GPG_TIMEOUT = 20.0
_ARMOR = b"-----BEGIN PGP SIGNATURE-----"


class KeyringError(ValueError):
    """The configured keyring cannot be used."""


class SignatureVerifier:
    """Verifies armored detached signatures made by keys of one armored public keyring."""

    def __init__(self, keyring_path: Path, homes: Path) -> None:
        try:
            keyring = keyring_path.read_bytes()
        except OSError as error:
            raise KeyringError(f"KUBERPULT_PGP_KEY_RING_PATH cannot be read: {error}") from None
        # One home per keyring content, imported once under a lock: every worker shares it.
        home = homes / hashlib.sha256(keyring).hexdigest()[:16]
        homes.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(homes / ".import.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (home / "imported").exists():
                home.mkdir(mode=0o700, exist_ok=True)
                gpg = gnupg.GPG(gnupghome=str(home))
                result = gpg.import_keys(keyring.decode("utf-8", "replace"))
                if not result.fingerprints:
                    raise KeyringError(
                        f"KUBERPULT_PGP_KEY_RING_PATH ({keyring_path}) holds no public key"
                    )
                (home / "imported").touch()
        self.gpg = gnupg.GPG(gnupghome=str(home))
        self.scratch = home / "scratch"
        self.scratch.mkdir(mode=0o700, exist_ok=True)
        #: Full primary-key fingerprints of the keyring: the allow-list.
        self.fingerprints = frozenset(key["fingerprint"] for key in self.gpg.list_keys())

    def verify(self, environment: str, manifest: bytes, signatures: list[bytes]) -> str:
        """Return the fingerprint of the key that signed ``manifest``.

        A signature by an unknown key is skipped; any other bad signature fails the request,
        even next to a good one.
        :raises ValidationError: Kuberpult's texts, naming the environment.
        """
        field = f"signatures[{environment}]"
        accepted: str | None = None
        for signature in signatures:
            result = self._verify_one(manifest, signature)
            problem = self._problem(result, signature)
            if problem == "unknown key":
                continue
            if problem is not None:
                raise ValidationError(
                    field, f"Internal: Invalid Signature for manifests[{environment}]: {problem}"
                )
            accepted = result.pubkey_fingerprint or result.fingerprint
        if accepted is None:
            raise ValidationError(
                field, f"signature is invalid or it was not found for environment {environment}"
            )
        return accepted

    def _problem(self, result: Any, signature: bytes) -> str | None:
        if not signature.lstrip().startswith(_ARMOR):
            return "the signature is not an ASCII-armored detached signature"
        problems = {p.get("status", "") for p in result.problems}
        # gpg reports a key it does not have as ERRSIG ("signature error") plus NO_PUBKEY.
        if "no public key" in problems and problems <= {"no public key", "signature error"}:
            return "unknown key"
        if not result.valid or result.key_status is not None or problems:
            return result.key_status or result.status or "EOF"
        fingerprint = result.pubkey_fingerprint or result.fingerprint
        if fingerprint not in self.fingerprints:
            return "unknown key"
        return None

    def _verify_one(self, manifest: bytes, signature: bytes) -> Any:
        """Run ``gpg --verify`` with a deadline; gpg needs the signature in a file."""
        fd, path = tempfile.mkstemp(dir=self.scratch, suffix=".asc")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(signature)
            outcome: list[Any] = []
            worker = threading.Thread(
                target=lambda: outcome.append(self.gpg.verify_data(path, manifest)), daemon=True
            )
            worker.start()
            worker.join(GPG_TIMEOUT)
            if not outcome:
                raise Unavailable("gpg did not answer in time; try again", retry_after=5)
            return outcome[0]
        finally:
            os.unlink(path)
