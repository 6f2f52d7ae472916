"""The signature envelope (``KUBERPULT_SIGNATURE_MODE=envelope``): what a replay-proof
signature signs instead of the manifest bytes alone, so a signature made for one application,
environment or version does not verify for another. The format is a published contract (the
README's "Envelope signatures"); clients build the same bytes on their side.
"""

from __future__ import annotations

import hashlib

HEADER = "kuberpult-lite envelope v1"


def envelope(application: str, environment: str, version: int, manifest: bytes) -> bytes:
    """The exact bytes a signature covers: five LF-terminated ASCII lines."""
    digest = hashlib.sha256(manifest).hexdigest()
    return (
        f"{HEADER}\n"
        f"application: {application}\n"
        f"environment: {environment}\n"
        f"version: {version}\n"
        f"manifest-sha256: {digest}\n"
    ).encode("ascii")
