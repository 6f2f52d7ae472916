"""A real OIDC provider process (oauth2-mock-server via tests/oidc/provider.mjs) for the tests."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from testkit.server import free_port

PROVIDER = Path(__file__).parent / "oidc" / "provider.mjs"


class Provider:
    """oauth2-mock-server on 127.0.0.1, its issuer under ``prefix``."""

    def __init__(self, prefix: str = "") -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}{prefix}"
        self.process = subprocess.Popen(
            ["node", str(PROVIDER), str(self.port), prefix],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("the OIDC provider did not start")

    def stop(self) -> None:
        """Stop the provider."""
        self.process.terminate()
        self.process.wait(timeout=10)
        if self.process.stdout:
            self.process.stdout.close()

    def token(self, audience: str = "kuberpult", **claims: str) -> str:
        """Mint a token by a client_credentials POST; keyword fields become claims."""
        response = requests.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "aud": audience, **claims},
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def jwks_fetches(self) -> int:
        """How often the key set was fetched so far."""
        return int(requests.get(f"{self.issuer}/stats", timeout=5).json()["jwks"])

    def public_key_pem(self) -> bytes:
        """The provider's signing key as PEM (for the HS256 key-confusion attack)."""
        from cryptography.hazmat.primitives import serialization

        jwks = requests.get(f"{self.issuer}/jwks", timeout=5).json()
        key = jwt.PyJWK(jwks["keys"][0]).key
        return bytes(
            key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def forged(header: dict[str, Any], claims: dict[str, Any], sign: bytes = b"") -> str:
    """A hand-made JWT (for ``alg: none`` and HS256-with-the-public-key)."""
    import hashlib
    import hmac

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    signing_input = f"{part(header)}.{part(claims)}"
    signature = b""
    if header["alg"] == "HS256":
        signature = hmac.new(sign, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def unknown_key_token(claims: dict[str, Any]) -> str:
    """An RS256 token signed by a key the provider never published."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": uuid.uuid4().hex})


def standard_claims(issuer: str, audience: str = "kuberpult", **extra: object) -> dict[str, Any]:
    """Valid iss/aud/exp claims plus ``extra``."""
    now = int(time.time())
    return {"iss": issuer, "aud": audience, "iat": now, "exp": now + 600, "sub": "x", **extra}
