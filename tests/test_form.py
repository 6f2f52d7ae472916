"""Unit tests for turning multipart parts into a release request, without a server."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import pytest

from server.errors import ValidationError
from server.models import ReleaseRequest
from server.release.form import parse_release

MANIFEST = ("manifests[development]", b"kind: Deployment\n")


def parse(
    values: Sequence[tuple[str, str | bytes]] = (),
    files: Sequence[tuple[str, bytes]] = (MANIFEST,),
    headers: dict[str, str] | None = None,
) -> ReleaseRequest:
    """Parse a request for application my-app with these parts."""
    return parse_release([("application", "my-app"), *values], list(files), headers or {})


def test_a_full_request_is_parsed() -> None:
    request = parse(
        [
            ("version", "12"),
            ("team", "core"),
            ("source_commit_id", "A" * 40),
            ("display_version", "1.2"),
            ("source_repo_url", "ignored"),
        ],
        [MANIFEST, ("manifests[staging]", b"a: 1"), ("signatures[staging]", b"sig")],
        {"author-name": base64.b64encode(b"Jane").decode()},
    )
    assert request.application == "my-app"
    assert request.version == 12
    assert request.team == "core"
    assert request.source_commit_id == "a" * 40
    assert request.manifests == {"development": b"kind: Deployment\n", "staging": b"a: 1"}
    assert request.signatures == {"staging": [b"sig"]}
    assert request.author_name == "Jane"
    assert request.author_email is None


def test_the_application_is_checked_first() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_release([], [("notes", b"x")], {})
    assert caught.value.message == (
        "Exactly one 'application' parameter should be provided, 0 are given"
    )


def test_manifests_as_text_parts_count() -> None:
    request = parse_release([("application", "a"), ("manifests[development]", "kind: X")], [], {})
    assert request.manifests == {"development": b"kind: X"}


def test_a_signature_needs_its_manifest() -> None:
    message = r"signatures\[prod\] given without manifests\[prod\]"
    with pytest.raises(ValidationError, match=message):
        parse(files=[MANIFEST, ("signatures[prod]", b"sig")])


@pytest.mark.parametrize(("name", "value"), [("revision", "0"), ("is_prepublish", "false")])
def test_harmless_values_of_unsupported_fields_pass(name: str, value: str) -> None:
    assert parse([(name, value)]).application == "my-app"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("revision", "2"),
        ("is_prepublish", "true"),
        ("deploy_to_downstream_environments", "prod"),
        ("experimentalArgoBracket", "x"),
    ],
)
def test_unsupported_features_are_refused_not_ignored(name: str, value: str) -> None:
    with pytest.raises(ValidationError, match="not supported") as caught:
        parse([(name, value)])
    assert caught.value.field == name


@pytest.mark.parametrize("name", ["application", "source_message", "team", "revision"])
def test_a_text_part_that_is_not_utf8_is_refused_naming_it(name: str) -> None:
    values: list[tuple[str, str | bytes]] = [(name, b"broken \xff\xfe")]
    if name != "application":
        values.insert(0, ("application", "my-app"))
    with pytest.raises(ValidationError) as caught:
        parse_release(values, [MANIFEST], {})
    assert caught.value.field == name
    assert caught.value.message == f"{name} is not valid UTF-8"


def test_text_parts_as_bytes_are_decoded_as_utf8() -> None:
    request = parse_release(
        [("application", b"my-app"), ("source_message", "Gr\xfc\xdfe".encode())],
        [MANIFEST],
        {},
    )
    assert (request.application, request.source_message) == ("my-app", "Gr\xfc\xdfe")


def test_a_replacement_character_sent_on_purpose_is_kept() -> None:
    """U+FFFD is a character like any other; only undecodable bytes are refused."""
    sent = "broken \ufffd on purpose"
    assert parse([("source_message", sent.encode())]).source_message == sent
    assert parse([("source_message", sent)]).source_message == sent


def test_a_manifest_text_part_that_is_not_utf8_is_refused_like_a_file() -> None:
    values: list[tuple[str, str | bytes]] = [
        ("application", b"my-app"),
        ("manifests[development]", b"a: \xff\xfe"),
    ]
    with pytest.raises(ValidationError, match="not valid UTF-8") as caught:
        parse_release(values, [], {})
    assert caught.value.field == "manifests[development]"
    raw = parse_release(values, [], {}, check_yaml=False).manifests
    assert raw == {"development": b"a: \xff\xfe"}  # kept byte for byte until checked


def test_author_headers_must_be_base64_of_one_line() -> None:
    with pytest.raises(ValidationError, match="base64"):
        parse(headers={"author-email": "%%%"})
    newline = base64.b64encode(b"a\nb").decode()
    with pytest.raises(ValidationError) as caught:
        parse(headers={"author-name": newline})
    assert caught.value.field == "author-name"


def test_more_than_fifty_environments_are_refused() -> None:
    files = [(f"manifests[env-{i}]", b"a: 1") for i in range(51)]
    with pytest.raises(ValidationError, match="at most 50"):
        parse(files=files)
