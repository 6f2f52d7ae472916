"""Detached PGP signatures over manifests, checked with python-gnupg against one keyring.

The keyring is imported into a private GNUPGHOME that holds nothing else, so "made by a known
key" means "made by a key of the configured keyring". Every signature is judged on gpg's
status lines (parsed by python-gnupg), not on its exit code (gpg exits 0 for an expired or
revoked key). Work per request is bounded: one gpg process per environment, at most
``GPG_SLOTS`` at once per worker, each killed at ``GPG_TIMEOUT``.

Over 250 lines: armor and packet parsing and the gpg call are one trust boundary, reviewed
together.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import os
import re
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import gnupg

from server.errors import Unavailable
from server.errors import ValidationError

GPG_TIMEOUT = 20.0
#: gpg processes one worker runs at once; a request waits for a slot up to GPG_TIMEOUT.
GPG_SLOTS = 4
#: Signature parts per environment (Kuberpult allows several: one per signer).
MAX_SIGNATURES_PER_ENVIRONMENT = 4
_ARMOR_BEGIN = b"-----BEGIN PGP SIGNATURE-----"
_ARMOR_END = b"-----END PGP SIGNATURE-----"
_SIGNATURE_PACKET = 2
_BINARY_SIGNATURE = 0x00
_SECRET_KEY_PACKETS = {5, 7}
_ARMORED_BLOCK = re.compile(rb"-----BEGIN PGP ([A-Z ]+)-----(.*?)-----END PGP \1-----", re.S)
#: Importing, listing and verifying public keys needs no gpg-agent; one that gpg started would
#: detach from the server and outlive it.
_GPG_OPTIONS = ["--no-autostart"]


class KeyringError(ValueError):
    """The configured keyring cannot be used."""


class NotASignature(ValueError):
    """A part is not an ASCII-armored detached OpenPGP signature."""


def dearmor(block: bytes) -> bytes:
    """The binary packets of one ASCII-armored block (headers and CRC line dropped)."""
    lines = [line.strip() for line in block.strip().splitlines()[1:-1]]
    # Armor headers ("Version: ...") come first and end at an empty line; some writers
    # send none. Base64 never holds ':', so a line with one is a header.
    while lines and (b":" in lines[0] or not lines[0]):
        lines.pop(0)
    body: list[bytes] = []
    for line in lines:
        if line.startswith(b"="):
            break  # the CRC-24 checksum line
        body.append(line)
    try:
        return base64.b64decode(b"".join(body), validate=True)
    except binascii.Error:
        raise NotASignature("the armored data is not valid base64") from None


def packet_tags(data: bytes) -> list[int]:
    """The tag of every OpenPGP packet in ``data``. :raises NotASignature: see ``packets``."""
    return [tag for tag, _ in packets(data)]


def packets(data: bytes) -> list[tuple[int, bytes]]:
    """(tag, body) of every OpenPGP packet in ``data`` (RFC 4880 §4.2 headers).

    :raises NotASignature: the data is not a sequence of whole packets.
    """
    found, position = [], 0
    while position < len(data):
        header = data[position]
        if not header & 0x80:
            raise NotASignature("not OpenPGP data")
        if header & 0x40:  # new format
            tag = header & 0x3F
            first = data[position + 1] if position + 1 < len(data) else 0
            if first < 192:
                length, position = first, position + 2
            elif first < 224:
                second = data[position + 2] if position + 2 < len(data) else 0
                length, position = ((first - 192) << 8) + second + 192, position + 3
            elif first == 255:
                length = int.from_bytes(data[position + 2 : position + 6], "big")
                position += 6
            else:
                raise NotASignature("partial-length packets are not a detached signature")
        else:  # old format
            tag, kind = (header >> 2) & 0x0F, header & 0x03
            if kind == 3:
                raise NotASignature("indeterminate-length packets are not a detached signature")
            size = (1, 2, 4)[kind]
            length = int.from_bytes(data[position + 1 : position + 1 + size], "big")
            position += 1 + size
        if position + length > len(data):
            raise NotASignature("truncated OpenPGP packet")
        found.append((tag, data[position : position + length]))
        position += length
    return found


def signature_packets(part: bytes) -> bytes:
    """The signature packets of one ``signatures[<env>]`` part.

    :raises NotASignature: not exactly one armored block of signature packets only (a signed
        message or a key would make gpg verify something other than the manifest).
    """
    stripped = part.strip()
    if not stripped.startswith(_ARMOR_BEGIN) or not stripped.endswith(_ARMOR_END):
        raise NotASignature("the signature is not an ASCII-armored detached signature")
    if stripped.count(_ARMOR_BEGIN) != 1:
        raise NotASignature("one signature part holds more than one armored block")
    binary = dearmor(stripped)
    found = packets(binary)
    if not found or any(tag != _SIGNATURE_PACKET for tag, _ in found):
        raise NotASignature("the armored block holds more than signature packets")
    for _, body in found:
        # The signature type: 0x00 signs the exact bytes. 0x01 (text mode) would also accept
        # the manifest with other line endings, which is not what was signed.
        version = body[0] if body else 0
        kind = body[2] if version == 3 and len(body) > 2 else body[1] if len(body) > 1 else -1
        if kind != _BINARY_SIGNATURE:
            raise NotASignature(
                f"signature type 0x{kind:02x} is not a binary signature over the exact bytes "
                "(sign with gpg --detach-sign, without --textmode)"
            )
    return binary


def _refuse_secret_keys(keyring: bytes, source: Path) -> None:
    """A keyring is public keys only: a secret key has no business on the release server."""
    refusal = KeyringError(
        f"KUBERPULT_PGP_KEY_RING_PATH ({source}) holds secret key material: export only the "
        "public keys (gpg --armor --export <fingerprints>) and keep secret keys off the server"
    )
    blocks = _ARMORED_BLOCK.findall(keyring)
    if b"PRIVATE KEY BLOCK" in keyring or any(kind != b"PUBLIC KEY BLOCK" for kind, _ in blocks):
        raise refusal
    try:
        binaries = [dearmor(block.group(0)) for block in _ARMORED_BLOCK.finditer(keyring)]
        tags = [tag for binary in binaries or [keyring] for tag in packet_tags(binary)]
    except NotASignature as error:
        raise KeyringError(
            f"KUBERPULT_PGP_KEY_RING_PATH ({source}) is not an OpenPGP keyring: {error}"
        ) from None
    if _SECRET_KEY_PACKETS & set(tags):
        raise refusal


def _holds_secret_keys(home: Path) -> bool:
    """Whether gpg keeps a secret key in ``home``: gpg-agent's key files, or gpg 1's secret
    keyring. Read from disk: ``gpg --list-secret-keys`` asks a gpg-agent, which it would have to
    start (and with ``--no-autostart`` it lists nothing)."""
    keys = home / "private-keys-v1.d"
    if keys.is_dir() and any(keys.iterdir()):
        return True
    secring = home / "secring.gpg"
    return secring.is_file() and secring.stat().st_size > 0


class SignatureVerifier:
    """Verifies armored detached signatures made by keys of one armored public keyring."""

    def __init__(self, keyring_path: Path, homes: Path) -> None:
        try:
            keyring = keyring_path.read_bytes()
        except OSError as error:
            raise KeyringError(f"KUBERPULT_PGP_KEY_RING_PATH cannot be read: {error}") from None
        _refuse_secret_keys(keyring, keyring_path)
        # One home per keyring content, imported once under a lock: every worker shares it.
        home = homes / hashlib.sha256(keyring).hexdigest()[:16]
        homes.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(homes / ".import.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (home / "imported").exists():
                home.mkdir(mode=0o700, exist_ok=True)
                gpg = gnupg.GPG(gnupghome=str(home), options=_GPG_OPTIONS)
                # Bytes: a binary keyring (gpg --export) as well as an armored one.
                result = gpg.import_keys(keyring)
                if not result.fingerprints:
                    raise KeyringError(
                        f"KUBERPULT_PGP_KEY_RING_PATH ({keyring_path}) holds no public key"
                    )
                (home / "imported").touch()
        self.home = home
        self.gpg = gnupg.GPG(gnupghome=str(home), options=_GPG_OPTIONS)
        if _holds_secret_keys(home):
            raise KeyringError(f"the keyring home {home} holds a secret key; remove it and restart")
        self.scratch = home / "scratch"
        self.scratch.mkdir(mode=0o700, exist_ok=True)
        #: Full primary-key fingerprints of the keyring: the allow-list.
        self.fingerprints = frozenset(key["fingerprint"] for key in self.gpg.list_keys())
        self._slots = threading.BoundedSemaphore(GPG_SLOTS)

    def verify(self, environment: str, manifest: bytes, signatures: list[bytes]) -> str:
        """Return the fingerprint of the key that signed ``manifest``.

        All of the environment's parts are checked by one gpg process. A signature by an
        unknown key is skipped; any other bad signature fails the request, even next to a good
        one. :raises ValidationError: Kuberpult's texts, naming the environment.
        """
        field = f"signatures[{environment}]"
        if len(signatures) > MAX_SIGNATURES_PER_ENVIRONMENT:
            raise ValidationError(
                field,
                f"at most {MAX_SIGNATURES_PER_ENVIRONMENT} signatures per environment, "
                f"{len(signatures)} given",
            )
        collected: list[bytes] = []
        for signature in signatures:
            try:
                collected.append(signature_packets(signature))
            except NotASignature as error:
                raise ValidationError(
                    field, f"Internal: Invalid Signature for manifests[{environment}]: {error}"
                ) from None
        accepted: str | None = None
        for result in self._verify_all(manifest, b"".join(collected)) if collected else []:
            problem = self._problem(result)
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

    def _problem(self, result: Any) -> str | None:
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

    def _verify_all(self, manifest: bytes, signature_data: bytes) -> list[Any]:
        """One ``gpg --verify`` over every signature packet, with a deadline that kills gpg;
        one python-gnupg result per signature (gpg starts each with a NEWSIG line)."""
        if not self._slots.acquire(timeout=GPG_TIMEOUT):
            raise Unavailable("too many signature checks at once; try again", retry_after=5)
        fd, path = tempfile.mkstemp(dir=self.scratch, suffix=".sig")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(signature_data)
            try:
                completed = subprocess.run(
                    [
                        "gpg",
                        "--homedir",
                        str(self.home),
                        "--batch",
                        "--no-tty",
                        "--no-verbose",
                        "--no-autostart",
                        "--status-fd",
                        "1",
                        "--verify",
                        "--",
                        path,
                        "-",
                    ],
                    input=manifest,
                    capture_output=True,
                    timeout=GPG_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                # subprocess.run has killed gpg already: no thread or process is left behind.
                raise Unavailable("gpg did not answer in time; try again", retry_after=5) from None
        finally:
            os.unlink(path)
            self._slots.release()
        results: list[Any] = []
        # Split on "\n" only: str.splitlines() would also split inside a user id gpg prints
        # raw (U+2028, U+0085) and let it fake a status line.
        for line in completed.stdout.decode("utf-8", "replace").split("\n"):
            if not line.startswith("[GNUPG:] "):
                continue
            key, _, value = line[len("[GNUPG:] ") :].partition(" ")
            if key == "NEWSIG" or not results:
                results.append(gnupg.Verify(self.gpg))
            results[-1].handle_status(key, value)
        expected = packet_tags(signature_data).count(_SIGNATURE_PACKET)
        if len([r for r in results if r.status]) < expected:
            # gpg stopped early (corrupt packet): the missing signatures count as bad.
            results.append(gnupg.Verify(self.gpg))
        return results
