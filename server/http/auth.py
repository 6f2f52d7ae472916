"""The HTTP side of authentication: every route declares its ``Access`` family with
``@access(...)``; bearer tokens (or the ``kuberpult.oauth`` cookie, for same-origin requests
only) are verified here, and the decision itself is ``Auth``'s.

A test walks ``app.url_map`` and fails for a view without a declared family, so a new
endpoint cannot be added open by forgetting a decorator.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from typing import TypeVar
from urllib.parse import urlsplit

from flask import g
from flask import request
from flask_httpauth import HTTPTokenAuth

from server.auth.access import Access
from server.auth.gate import Principal
from server.errors import Forbidden
from server.http.context import get_auth

F = TypeVar("F", bound=Callable[..., Any])
COOKIE = "kuberpult.oauth"
ACCESS_ATTRIBUTE = "kuberpult_access"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BEARER = HTTPTokenAuth(scheme="Bearer")


def access(family: Access) -> Callable[[F], F]:
    """Declare (and enforce) who may call the decorated view.

    Reads and lock edits are decided here; releases are admitted here (refused at once when
    no body could make up for a missing token) and decided by the view once the signatures
    in the body are known (``Auth.authorize_release``).
    """

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if family is not Access.PUBLIC:
                g.principal = _authenticate()
                auth = get_auth()
                if family in (Access.RELEASE, Access.LEGACY_RELEASE):
                    auth.admit_release(family, g.principal)
                else:
                    auth.require(family, g.principal)
            return view(*args, **kwargs)

        setattr(guarded, ACCESS_ATTRIBUTE, family)
        return guarded  # type: ignore[return-value]

    return decorate


def current_principal() -> Principal | None:
    """The verified caller of this request, or None (no token was sent or accepted)."""
    principal: Principal | None = g.get("principal")
    return principal


def _authenticate() -> Principal | None:
    """The principal of the request's token; None without one. A token that is sent is
    always checked: a bad one is a 401 even where none is needed."""
    auth = get_auth()
    if auth.tokens is None:
        return None
    token = _bearer_token()
    if token is None:
        token = request.cookies.get(COOKIE) or None
        if token is not None:
            _refuse_cross_site_cookie()
    return auth.authenticate(token) if token is not None else None


def _bearer_token() -> str | None:
    # flask-httpauth parses the Authorization header (scheme match, token extraction).
    parsed = _BEARER.get_auth()
    token = getattr(parsed, "token", None)
    return str(token) if token is not None else None


def _refuse_cross_site_cookie() -> None:
    """A cookie travels with cross-site requests too (a form's multipart POST is a "simple"
    request: no preflight). A state-changing request that authenticates by cookie must come
    from this server's own pages; header tokens are not sent by browsers on their own."""
    if request.method in _SAFE_METHODS:
        return
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if site is not None:
        same = site == "same-origin"
    elif origin is not None:
        same = urlsplit(origin).netloc == request.host
    else:
        same = False  # neither header: not a browser we can vouch for; use a header token
    if not same:
        raise Forbidden(
            "the kuberpult.oauth cookie is accepted for changes only from this server's own "
            "pages (Sec-Fetch-Site: same-origin or a matching Origin); send "
            "'Authorization: Bearer <token>' instead"
        )
