"""Turn the parts of a multipart release request into a validated ``ReleaseRequest``.

Pure: it takes the parts as plain values (the HTTP layer reads them), so every rule can be
tested without a server. Checks run in Kuberpult's order and the first failure wins.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from typing import TypeVar

from server import rules
from server.errors import ValidationError
from server.models import ReleaseRequest
from server.release import manifests

T = TypeVar("T")
_FILE_KEY = re.compile(r"(manifests|signatures)\[([^]]*)\]")
MAX_ENVIRONMENTS = 50
MAX_SIGNATURE_BYTES = 64 * 1024

_SINGLE_FIELDS = (
    "team",
    "source_commit_id",
    "previous_commit_id",
    "source_author",
    "source_message",
    "display_version",
    "ci_link",
    "version",
)
# Fields of Kuberpult's API this server does not implement. They are refused when they ask
# for something, so a client never believes a feature worked when it was ignored.
_UNSUPPORTED = {
    "revision": "0",
    "is_prepublish": "false",
    "deploy_to_downstream_environments": "",
    "experimentalArgoBracket": None,
}
_IGNORED = {"source_repo_url"}  # deprecated in Kuberpult, only logged there


def parse_release(
    values: Iterable[tuple[str, str | bytes]],
    files: Iterable[tuple[str, bytes]],
    headers: Mapping[str, str],
    *,
    check_yaml: bool = True,
) -> ReleaseRequest:
    """Validate the parts of a release request.

    ``values`` are the text parts, ``files`` the parts with a filename; both may repeat a name.
    A text part given as bytes (as the HTTP layer reads it) must be UTF-8, like a file part.
    ``check_yaml=False`` leaves the costly YAML check to ``check_manifests``, for callers that
    authenticate the request first (an unauthenticated body must not cost seconds of CPU).
    :raises ValidationError: naming the first field that breaks a rule.
    """
    values, files = list(values), list(files)
    for name, _ in (*values, *files):
        if not name:
            raise ValidationError("multipart", "every multipart part needs a non-empty name")
    grouped_values: dict[str, list[str | bytes]] = {}
    for name, value in values:
        grouped_values.setdefault(name, []).append(value)
    grouped_files: dict[str, list[bytes]] = {}
    for name, content in files:
        grouped_files.setdefault(name, []).append(content)
    # A manifest sent as a plain text part (curl -F 'manifests[x]=<file') counts too; Kuberpult
    # silently ignored it and then complained that no manifest was given.
    for name in list(grouped_values):
        if _FILE_KEY.fullmatch(name):
            grouped_files.setdefault(name, []).extend(_raw(v) for v in grouped_values.pop(name))

    application = _single(grouped_values, "application", required=True)
    assert application is not None  # noqa: S101 - required=True guarantees it
    rules.application(application)

    manifest_parts, signature_parts = _file_parts(grouped_files, check_yaml)
    fields = {name: _single(grouped_values, name) for name in _SINGLE_FIELDS}
    _check_unsupported(grouped_values)

    return ReleaseRequest(
        application=application,
        manifests=manifest_parts,
        signatures=signature_parts,
        version=_optional(fields["version"], rules.version),
        team=_optional(fields["team"], rules.team),
        source_commit_id=_optional(
            fields["source_commit_id"], lambda v: rules.commit_id("source_commit_id", v)
        ),
        previous_commit_id=_optional(
            fields["previous_commit_id"], lambda v: rules.commit_id("previous_commit_id", v)
        ),
        source_author=_optional(fields["source_author"], rules.source_author),
        source_message=_optional(
            fields["source_message"], lambda v: rules.limited_text("source_message", v)
        ),
        display_version=_optional(fields["display_version"], rules.display_version),
        ci_link=_optional(fields["ci_link"], rules.ci_link),
        author_name=author_header(headers, "author-name"),
        author_email=author_header(headers, "author-email"),
        client_uuid=_optional(headers.get("client-uuid") or None, rules.client_uuid),
    )


def _single(
    grouped: dict[str, list[str | bytes]], name: str, *, required: bool = False
) -> str | None:
    found = grouped.pop(name, [])
    if len(found) > 1 or (required and not found):
        raise ValidationError(
            name, f"Exactly one {name!r} parameter should be provided, {len(found)} are given"
        )
    return _text(name, found[0]) if found else None


def _text(name: str, value: str | bytes) -> str:
    """A text part's value; raw bytes must be UTF-8 (the rule file parts follow)."""
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(name, f"{name} is not valid UTF-8") from None


def _raw(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def check_manifests(request: ReleaseRequest) -> None:
    """The YAML check of every manifest. :raises ValidationError: naming the environment."""
    for env, content in sorted(request.manifests.items()):
        manifests.check_yaml(env, content)


def _file_parts(
    grouped: dict[str, list[bytes]], check_yaml: bool = True
) -> tuple[dict[str, bytes], dict[str, list[bytes]]]:
    found: dict[str, bytes] = {}
    signatures: dict[str, list[bytes]] = {}
    for key in sorted(grouped):
        match = _FILE_KEY.fullmatch(key)
        if not match:
            raise ValidationError(
                key,
                f"Invalid manifest form file: {key!r}. Must match "
                r"'\Amanifests\[([^]]+)\]\z' or '\Asignatures\[([^]]+)\]\z'",
            )
        kind, env = match.groups()
        rules.environment(env)
        contents = grouped[key]
        if kind == "signatures":
            if any(len(c) > MAX_SIGNATURE_BYTES for c in contents):
                raise ValidationError(key, f"{key} is larger than {MAX_SIGNATURE_BYTES} bytes")
            signatures[env] = contents
            continue
        if len(contents) > 1:
            raise ValidationError(key, f'multiple manifests submitted for "{env}"')
        if check_yaml:
            manifests.check_yaml(env, contents[0])
        found[env] = contents[0]
    if not found:
        raise ValidationError("manifests", "No manifest files provided")
    if len(found) > MAX_ENVIRONMENTS:
        raise ValidationError(
            "manifests", f"at most {MAX_ENVIRONMENTS} environments per release, {len(found)} given"
        )
    for env in signatures:
        if env not in found:
            raise ValidationError(
                f"signatures[{env}]", f"signatures[{env}] given without manifests[{env}]"
            )
    return found, signatures


def _check_unsupported(grouped: dict[str, list[str | bytes]]) -> None:
    for name in sorted(grouped):
        if name in _IGNORED:
            continue
        if name in _UNSUPPORTED:
            harmless = _UNSUPPORTED[name]
            if harmless is not None and all(
                _text(name, v).strip().lower() == harmless for v in grouped[name]
            ):
                continue
            raise ValidationError(name, f"{name!r} is not supported by this server")
        raise ValidationError(name, f"unknown parameter {name!r}")


def _optional(value: str | None, rule: Callable[[str], T]) -> T | None:
    return None if value is None else rule(value)


def author_header(headers: Mapping[str, str], name: str) -> str | None:
    """Decode Kuberpult's base64 ``author-name`` / ``author-email`` header, if sent."""
    raw = headers.get(name)
    if raw is None or raw == "":
        return None
    try:
        decoded = base64.b64decode(raw.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise ValidationError(
            name, f"header {name} is not valid standard base64 of UTF-8"
        ) from None
    return rules.author_header(name, decoded) or None
