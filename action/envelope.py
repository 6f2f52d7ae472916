"""The signature envelope, client side: the bytes an envelope signature covers (the server's
``KUBERPULT_SIGNATURE_MODE=envelope``). The format is the README's "Envelope signatures"; the
server builds the same bytes in its own module (client and server share no code), and so does
scripts/sign-manifests.sh; a test checks that all three agree."""

from __future__ import annotations

import hashlib

HEADER = "kuberpult-lite envelope v1"


def envelope(application: str, environment: str, version: int, manifest: bytes) -> bytes:
    """Five LF-terminated ASCII lines naming the release and the manifest's SHA-256."""
    digest = hashlib.sha256(manifest).hexdigest()
    return (
        f"{HEADER}\napplication: {application}\nenvironment: {environment}\n"
        f"version: {version}\nmanifest-sha256: {digest}\n"
    ).encode("ascii")
