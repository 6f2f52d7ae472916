"""OIDC bearer tokens: discovery, a JWKS cache per issuer, and PyJWT verification.

Algorithms are pinned to asymmetric ones (no ``none``, no HS256 signed with a public key);
``iss``, ``aud`` and ``exp`` are required. An unknown ``kid`` refetches the key set at most
once a minute; a provider that cannot be reached with nothing cached is a 503, not a 401.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import jwt
import requests

from server.errors import Unauthorized
from server.errors import Unavailable

ASYMMETRIC_ALGORITHMS = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
]
REFETCH_INTERVAL = 60.0
KEYS_LIFETIME = 3600.0
LEEWAY = 30
HTTP_TIMEOUT = 5.0


class OidcIssuer:
    """Verifies tokens of one issuer for one audience."""

    def __init__(self, issuer: str, audience: str) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._attempted_at = 0.0
        self._lock = threading.Lock()

    def verify(self, token: str, header: dict[str, Any]) -> dict[str, Any]:
        """The token's claims, once its signature and claims check out.

        :raises Unauthorized: with the reason. :raises Unavailable: no keys could be fetched.
        """
        algorithm = header.get("alg")
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise Unauthorized(f"token algorithm {algorithm!r} is not accepted")
        key = self._signing_key(str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as error:
            raise Unauthorized(f"token rejected: {error}") from None
        return claims

    def _signing_key(self, kid: str) -> Any:
        now = time.monotonic()
        stale = now - self._fetched_at > KEYS_LIFETIME
        keys = self._keys  # replaced whole, never mutated: safe to read without the lock
        if kid in keys and not stale:
            return keys[kid]
        if keys and not stale and now - self._attempted_at < REFETCH_INTERVAL:
            raise Unauthorized(f"token signed by unknown key {kid!r}")
        # One thread fetches; the others never queue behind a slow provider: they use what is
        # cached, or answer at once.
        if self._lock.acquire(blocking=False):
            try:
                self._attempted_at = time.monotonic()
                self._keys = keys = self._fetch_keys()
                self._fetched_at = time.monotonic()
            except (requests.RequestException, jwt.PyJWKClientError, ValueError, KeyError) as error:
                if not keys:
                    raise Unavailable(
                        f"the OIDC provider {self.issuer} cannot be reached to fetch its keys: "
                        f"{error}",
                        retry_after=10,
                    ) from None
            finally:
                self._lock.release()
        elif not keys:
            raise Unavailable(
                f"the keys of the OIDC provider {self.issuer} are being fetched; try again",
                retry_after=2,
            )
        if kid not in keys:
            raise Unauthorized(f"token signed by unknown key {kid!r}")
        return keys[kid]

    def _fetch_keys(self) -> dict[str, Any]:
        discovery = requests.get(
            f"{self.issuer}/.well-known/openid-configuration", timeout=HTTP_TIMEOUT
        )
        discovery.raise_for_status()
        document = discovery.json()
        # OpenID Connect Discovery §4.3: the document must name exactly the issuer it was
        # fetched for, or its keys belong to someone else.
        if str(document.get("issuer", "")).rstrip("/") != self.issuer:
            raise ValueError(
                f"the discovery document names issuer {document.get('issuer')!r}, "
                f"not {self.issuer!r}"
            )
        client = jwt.PyJWKClient(
            str(document["jwks_uri"]),
            cache_keys=False,
            cache_jwk_set=False,
            timeout=int(HTTP_TIMEOUT),
        )
        return {key.key_id: key.key for key in client.get_jwk_set().keys if key.key_id}


class TokenVerifier:
    """Routes a token to the issuer named in it; only configured issuers are trusted."""

    def __init__(self, issuers: list[OidcIssuer]) -> None:
        self.issuers = {issuer.issuer: issuer for issuer in issuers}

    def verify(self, token: str) -> tuple[str, dict[str, Any]]:
        """(issuer, claims) of a valid token. :raises Unauthorized: with the reason."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            raise Unauthorized(f"token is not a JWT: {error}") from None
        issuer = self.issuers.get(str(unverified.get("iss", "")).rstrip("/"))
        if issuer is None:
            raise Unauthorized(f"token issuer {unverified.get('iss')!r} is not trusted")
        return issuer.issuer, issuer.verify(token, header)
