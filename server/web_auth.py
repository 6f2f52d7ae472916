"""The HTTP side of authentication: bearer tokens (or the ``kuberpult.oauth`` cookie) through
flask-httpauth, and the gates in front of ``/api/*`` and the legacy ``/release``."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from typing import TypeVar

from flask import request
from flask_httpauth import HTTPTokenAuth
from werkzeug.datastructures import Authorization

from server.auth.gate import Principal
from server.errors import Unauthorized
from server.web_context import get_auth
from server.web_context import get_config

F = TypeVar("F", bound=Callable[..., Any])
COOKIE = "kuberpult.oauth"


class _BearerOrCookie(HTTPTokenAuth):  # type: ignore[misc]
    """``Authorization: Bearer <token>``, or else Kuberpult's ``kuberpult.oauth`` cookie."""

    def get_auth(self) -> Authorization | None:
        auth: Authorization | None = super().get_auth()
        if auth is None and request.cookies.get(COOKIE):
            auth = Authorization("bearer", token=request.cookies[COOKIE])
        return auth


bearer = _BearerOrCookie(scheme="Bearer")


@bearer.verify_token  # type: ignore[untyped-decorator]
def _verify_token(token: str) -> Principal:
    # Raising (instead of returning None) lets the 401 say why, and a 503 stay a 503.
    return get_auth().authenticate(token)


@bearer.error_handler  # type: ignore[untyped-decorator]
def _no_token(status: int) -> None:
    # Reached only without a usable token: a bad token raises its own reason above.
    raise Unauthorized(
        "kuberpult.oauth token not found: send 'Authorization: Bearer <token>' or the "
        "kuberpult.oauth cookie"
    )


def current_principal() -> Principal | None:
    """The verified caller of this request, or None when no token was asked for."""
    principal: Principal | None = bearer.current_user()
    return principal


def api_gate(view: F) -> F:
    """Kuberpult's ``/api/*`` gate: open when explicitly enabled without auth, else a valid
    bearer token, else 401 (no authentication configured)."""
    protected = bearer.login_required(view)

    @wraps(view)
    def gated(*args: Any, **kwargs: Any) -> Any:
        if get_config().api_enable_despite_no_auth:
            return view(*args, **kwargs)
        if get_auth().tokens is not None:
            return protected(*args, **kwargs)
        raise Unauthorized("IAP not enabled, /api unavailable.")

    return gated  # type: ignore[return-value]


def legacy_gate(view: F) -> F:
    """The legacy ``/release``: a token only when Dex is enabled (Kuberpult redirects to its
    login page there; an API has no page to show, so this answers 401)."""
    protected = bearer.login_required(view)

    @wraps(view)
    def gated(*args: Any, **kwargs: Any) -> Any:
        if get_config().dex_enabled:
            return protected(*args, **kwargs)
        return view(*args, **kwargs)

    return gated  # type: ignore[return-value]
