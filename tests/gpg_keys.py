"""Real gpg keys for the tests: trusted, unknown, expired, revoked, and one signing by subkey."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Keys:
    """A signer's GNUPGHOME plus the public keyring the server is given."""

    home: Path
    keyring: Path  # armored public keys of trusted, expired, revoked (+ revocation), subkey
    fingerprints: dict[str, str]

    def gpg(self, *args: str, data: bytes | None = None, faked_time: int | None = None) -> bytes:
        """Run gpg in the signer's home."""
        command = [
            "gpg",
            "--homedir",
            str(self.home),
            "--batch",
            "--yes",
            "--quiet",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ]
        if faked_time is not None:
            command.append(f"--faked-system-time={faked_time}!")
        result = subprocess.run(
            [*command, *args], input=data, capture_output=True, timeout=60, check=False
        )
        if result.returncode != 0:
            raise AssertionError(f"gpg {args} failed: {result.stderr.decode()}")
        return result.stdout

    def sign(self, who: str, data: bytes, *, armor: bool = True) -> bytes:
        """A detached signature over ``data`` by key ``who``."""
        user = self.fingerprints[who]
        if who == "subkey":
            user = self.fingerprints["subkey-signing"] + "!"
        faked = self.past if who == "expired" else None
        args = ["--local-user", user, "--detach-sign"] + (["--armor"] if armor else [])
        return self.gpg(*args, data=data, faked_time=faked)

    past: int = 0


def make_keys(base: Path) -> Keys:
    """Generate the keys (ed25519, fast) in a fresh home under ``base``."""
    home = base / "signer-gnupg"
    home.mkdir(mode=0o700)
    keys = Keys(home=home, keyring=base / "keyring.asc", fingerprints={})
    keys.past = int(time.time()) - 10 * 86400
    for name in ("trusted", "unknown", "revoked", "subkey"):
        keys.gpg("--quick-gen-key", f"{name} <{name}@example.com>", "ed25519", "sign", "never")
    keys.gpg(
        "--quick-gen-key",
        "expired <expired@example.com>",
        "ed25519",
        "sign",
        "1d",
        faked_time=keys.past,
    )
    for line in keys.gpg("--list-keys", "--with-colons").decode().splitlines():
        fields = line.split(":")
        if fields[0] == "fpr":
            last_fpr = fields[9]
        if fields[0] == "uid":
            keys.fingerprints[fields[9].split(" ")[0]] = last_fpr
    keys.gpg("--quick-add-key", keys.fingerprints["subkey"], "ed25519", "sign", "never")
    for line in (
        keys.gpg("--list-keys", "--with-colons", keys.fingerprints["subkey"]).decode().splitlines()
    ):
        if line.startswith("fpr:"):
            keys.fingerprints["subkey-signing"] = line.split(":")[9]  # the last fpr: the subkey
    exported = keys.gpg(
        "--armor",
        "--export",
        *(keys.fingerprints[n] for n in ("trusted", "expired", "revoked", "subkey")),
    )
    revocation = (home / "openpgp-revocs.d" / f"{keys.fingerprints['revoked']}.rev").read_text()
    # The generated certificate is guarded by a ':' at the line start against accidental use.
    certificate = revocation.replace(":-----BEGIN", "-----BEGIN")
    cert_home = base / "revoker"
    cert_home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(cert_home)}
    subprocess.run(
        ["gpg", "--batch", "--quiet", "--import"],
        input=exported,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    subprocess.run(
        ["gpg", "--batch", "--quiet", "--import"],
        input=certificate.encode(),
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    keyring = subprocess.run(
        ["gpg", "--batch", "--armor", "--export"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    keys.keyring.write_bytes(keyring)
    subprocess.run(
        ["gpgconf", "--homedir", str(cert_home), "--kill", "gpg-agent"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return keys
