"""Validation rules for release fields: pure functions on plain values, no I/O.

Names that become paths (application, environment, team) are allow-listed with
``re.fullmatch`` (``$`` would accept a trailing newline) and explicit ASCII classes.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from server.errors import InvalidApplicationName
from server.errors import ValidationError

# The one definition of each naming rule; every layer imports these (use ``fullmatch``).
#: Applications, environments and teams (Kuberpult's rule).
NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
NAME_PATTERN = rf"\A{NAME.pattern}\z"  # as shown in error messages
#: Lock ids (Kuberpult's lock id rule, at most 100 characters).
LOCK_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
_SHA1 = re.compile(r"[0-9a-fA-F]{40}")
_DIGITS = re.compile(r"[0-9]+")
# Kuberpult's source_author rule: a name, optionally followed by " <mail>".
_AUTHOR = re.compile(r"[^<\n]+( <[^@\n]+@[^>\n]+>)?")

MAX_APPLICATION = 39
MAX_ENVIRONMENT = 63
MAX_TEAM = 20
MAX_DISPLAY_VERSION = 15
MAX_TEXT_BYTES = 1000
MAX_VERSION = 2**63 - 1  # SQLite's INTEGER range


def application(name: str) -> str:
    """Return ``name`` if it is a valid application name, else raise (Kuberpult's TooLong)."""
    if len(name) > MAX_APPLICATION or not NAME.fullmatch(name):
        raise InvalidApplicationName(name, NAME_PATTERN, MAX_APPLICATION)
    return name


def environment(name: str) -> str:
    """Return ``name`` if it is a valid environment name (it becomes a directory)."""
    if len(name) > MAX_ENVIRONMENT or not NAME.fullmatch(name):
        raise ValidationError(
            f"manifests[{name}]",
            f"environment name {name!r} is invalid: it must be 1 to {MAX_ENVIRONMENT} "
            f"characters and match {NAME_PATTERN}",
        )
    return name


def team(name: str) -> str:
    """Return ``name`` if it is a valid team name."""
    if len(name) > MAX_TEAM or not NAME.fullmatch(name):
        raise ValidationError(
            "team",
            f"team name {name!r} is invalid: it must be 1 to {MAX_TEAM} characters "
            f"and match {NAME_PATTERN}",
        )
    return name


def commit_id(field: str, value: str) -> str:
    """Return the lower-cased commit id if it is exactly 40 hex characters."""
    if not _SHA1.fullmatch(value):
        raise ValidationError(
            field,
            f"{field} is not a valid SHA1 hash, should be exactly 40 characters [0-9a-fA-F], "
            f"but is {len(value)} characters: {value!r}",
        )
    return value.lower()


def version(value: str) -> int:
    """Parse a release version: decimal digits only, 1 to 2^63-1."""
    if not _DIGITS.fullmatch(value):
        raise ValidationError(
            "version",
            f"Provided version {value!r} is not valid: it must be a decimal number "
            f"between 1 and {MAX_VERSION}",
        )
    number = int(value)
    if not 1 <= number <= MAX_VERSION:
        raise ValidationError(
            "version", f"Provided version {value!r} is out of range: 1 to {MAX_VERSION}"
        )
    return number


def display_version(value: str) -> str:
    """Return ``value`` if it is 1 to 15 characters (Kuberpult counts bytes)."""
    size = len(value.encode())
    if not 1 <= size <= MAX_DISPLAY_VERSION:
        raise ValidationError(
            "display_version",
            f"display version must be 1 to {MAX_DISPLAY_VERSION} characters, {size} given",
        )
    if any(not c.isprintable() for c in value):
        raise ValidationError("display_version", "display version must be printable text")
    return value


def source_author(value: str) -> str:
    """Return ``value`` if it has Kuberpult's author shape ``Name <mail>`` and fits 1000 bytes."""
    limited_text("source_author", value)
    if not _AUTHOR.fullmatch(value):
        raise ValidationError(
            "source_author",
            f"source_author {value!r} is invalid: it must look like 'Name' or 'Name <mail@host>' "
            "on one line",
        )
    return value


_CLIENT_UUID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def client_uuid(value: str) -> str:
    """Kuberpult's ``client-uuid`` header (its client sends any string; ours a UUID)."""
    if not _CLIENT_UUID.fullmatch(value):
        raise ValidationError(
            "client-uuid",
            "header client-uuid must be 1 to 128 characters of A-Z a-z 0-9 . _ : - "
            "(starting with a letter or digit)",
        )
    return value


def _encodable(field: str, value: str) -> None:
    """JSON can carry lone surrogates (``"\\ud800"``), which no UTF-8 file can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(field, f"{field} is not valid Unicode (a lone surrogate)") from None


def limited_text(field: str, value: str, limit: int = MAX_TEXT_BYTES) -> str:
    """Return ``value`` if it fits ``limit`` bytes of UTF-8 and has no NUL."""
    _encodable(field, value)
    size = len(value.encode())
    if size > limit:
        raise ValidationError(field, f"{field} must not exceed {limit} bytes, {size} given")
    if "\0" in value:
        raise ValidationError(field, f"{field} must not contain NUL characters")
    return value


def ci_link(value: str) -> str:
    """Return ``value`` if it is an absolute http(s) URL of at most 1000 bytes."""
    limited_text("ci_link", value)
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
    except ValueError:  # an unbalanced IPv6 bracket, a bad port
        hostname = None
    if (
        not hostname
        or parts.scheme not in ("http", "https")
        or any(c.isspace() or not c.isprintable() for c in value)
    ):
        raise ValidationError(
            "ci_link", f"ci_link {value!r} is not an absolute http(s) URL without spaces"
        )
    return value


def author_header(header: str, value: str) -> str:
    """Return a decoded author header if it is one line of at most 200 characters."""
    _encodable(header, value)
    if len(value) > 200 or any(c in value for c in "<>\n\r\0"):
        raise ValidationError(
            header, f"{header} must be at most 200 characters without '<', '>' or newlines"
        )
    return value
