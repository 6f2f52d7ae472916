"""The exception tree of the server.

Every error the server can answer with is a type here. Each carries its HTTP status and a
machine-readable code; ``api`` renders all of them (and Werkzeug's own) as one JSON shape::

    {"error": {"code": "invalid_field", "field": "version", "message": "..."}}

Where Kuberpult answers with a JSON oneof (``TooLong``, ``TooOld``, ``AlreadyExistsDifferent``)
that key is added beside ``error``, so Kuberpult clients keep working.
"""

from __future__ import annotations

from typing import Any


class KuberpultError(Exception):
    """Root of every error the server answers with."""

    status = 500
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        """The JSON body of the response."""
        return {"error": {"code": self.code, "message": self.message}}

    def headers(self) -> dict[str, str]:
        """Extra response headers."""
        return {}


class BadRequest(KuberpultError):
    """The request cannot be understood (not multipart, bad boundary, bad header)."""

    status = 400
    code = "bad_request"


class ValidationError(BadRequest):
    """A field breaks a rule; the message names the field and the rule."""

    code = "invalid_field"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def body(self) -> dict[str, Any]:
        """The JSON body, naming the field."""
        return {"error": {"code": self.code, "field": self.field, "message": self.message}}


class InvalidApplicationName(ValidationError):
    """The application name breaks the name rule; Kuberpult calls this ``TooLong``."""

    def __init__(self, name: str, pattern: str, max_len: int) -> None:
        super().__init__(
            "application",
            f"application name {name!r} is invalid: it must be 1 to {max_len} characters "
            f"and match {pattern}",
        )
        self.name, self.pattern, self.max_len = name, pattern, max_len

    def body(self) -> dict[str, Any]:
        """Kuberpult's ``TooLong`` oneof plus our error object."""
        too_long = {"app_name": self.name, "reg_exp": self.pattern, "max_len": self.max_len}
        return {"TooLong": too_long, **super().body()}


class TooOld(BadRequest):
    """The release would be removed by the cleanup rule as soon as it is written."""

    code = "too_old"

    def body(self) -> dict[str, Any]:
        """Kuberpult's ``TooOld`` oneof plus our error object."""
        return {"TooOld": {}, **super().body()}


class Unauthorized(KuberpultError):
    """No acceptable credentials."""

    status = 401
    code = "unauthorized"


class Forbidden(KuberpultError):
    """Authenticated, but not allowed to do this."""

    status = 403
    code = "forbidden"


class NotFound(KuberpultError):
    """The thing asked for does not exist."""

    status = 404
    code = "not_found"


class AlreadyExistsDifferent(KuberpultError):
    """The (application, version) exists with other content; nothing was written."""

    status = 409
    code = "already_exists_different"

    # Kuberpult's enum numbers for the first differing field.
    FIELDS = {
        "source_commit_id": 0,
        "source_author": 1,
        "source_message": 2,
        "display_version": 4,
        "team": 5,
        "manifests": 6,
    }

    def __init__(self, field: str, diff: str) -> None:
        super().__init__(
            f"a release with this application and version already exists with a different {field}"
        )
        self.field, self.diff = field, diff

    def body(self) -> dict[str, Any]:
        """Kuberpult's ``AlreadyExistsDifferent`` oneof plus our error object."""
        different = {"first_differing_field": self.FIELDS[self.field], "diff": self.diff}
        body = {"AlreadyExistsDifferent": different, **super().body()}
        body["error"]["field"] = self.field
        return body


class RepositoryConflict(KuberpultError):
    """The manifest repository, as it is, does not allow the change (a planted symlink, an
    unparsable config file); ``code`` says which."""

    status = 409

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


#: The refusal code of a release whose application failed with a bug (not the tree's fault).
INTERNAL_APPLY_ERROR = "internal_apply_error"


def from_repository(code: str, message: str) -> KuberpultError:
    """The answer for a change the manifest repository refused, by the refusal's code."""
    if code == INTERNAL_APPLY_ERROR:
        return KuberpultError(message)
    if code == "too_old":
        return TooOld(message)
    if code in ("unknown_environment", "unknown_environment_group", "unknown_release"):
        return NotFound(message)
    if code == "forbidden":
        return Forbidden(message)
    return RepositoryConflict(code, message)


class PayloadTooLarge(KuberpultError):
    """The body (or one part of it) is over the limit."""

    status = 413
    code = "payload_too_large"


class Unavailable(KuberpultError):
    """Try again later; ``retry_after`` seconds is a good moment."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        """The ``Retry-After`` header."""
        return {"Retry-After": str(self.retry_after)}


class QueueFull(Unavailable):
    """Too many releases wait for a push already; nothing was stored."""

    code = "queue_full"


class PushRefused(KuberpultError):
    """The remote refused the push (a hook, branch protection); the release stays stored."""

    status = 502
    code = "push_rejected"


class EditPending(Unavailable):
    """An edit (a lock, an environment) is committed and its push is still running."""

    code = "push_pending"


class PushPending(Unavailable):
    """The release is stored in SQLite but not yet on the remote; it will be pushed."""

    code = "push_pending"

    def __init__(self, application: str, version: int, reason: str, retry_after: int) -> None:
        super().__init__(
            f"release {version} of {application!r} is stored and will be pushed to the manifest "
            f"repository automatically; the push did not complete: {reason}",
            retry_after,
        )
        self.application, self.version = application, version

    def body(self) -> dict[str, Any]:
        """The error plus which release is pending."""
        body = super().body()
        body["error"]["release"] = {"application": self.application, "version": self.version}
        return body
