"""A machine-to-machine token by the OAuth2 client-credentials grant, for
``kuberpult-client --oauth_token_url`` and the Action's ``oauth-*`` inputs.

requests-oauthlib is imported only here, and only when a token is asked for: the Action runs
without it otherwise (its install step adds it for these inputs alone).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit


def fetch_client_credentials_token(
    token_url: str, client_id: str, client_secret: str, audience: str | None = None
) -> str:
    """A machine-to-machine token by the OAuth2 client-credentials grant (requests-oauthlib)."""
    from oauthlib.oauth2 import BackendApplicationClient
    from requests_oauthlib import OAuth2Session

    host = urlsplit(token_url).hostname or ""
    if token_url.startswith("http://") and host in ("127.0.0.1", "localhost", "::1"):
        # oauthlib refuses plain http; a provider on this very machine is the one exception.
        os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
    session = OAuth2Session(client=BackendApplicationClient(client_id=client_id))
    extra = {"audience": audience} if audience else {}
    token = session.fetch_token(
        token_url, client_id=client_id, client_secret=client_secret, timeout=30, **extra
    )
    return str(token.get("id_token") or token["access_token"])
