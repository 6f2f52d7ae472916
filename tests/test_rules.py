"""Unit tests for the field rules, without a server."""

from __future__ import annotations

import pytest

from server import rules
from server.errors import InvalidApplicationName
from server.errors import ValidationError


@pytest.mark.parametrize("name", ["a", "my-app", "a1-b2-c3", "x" * 39, "0"])
def test_valid_application_names(name: str) -> None:
    assert rules.application(name) == name


@pytest.mark.parametrize(
    "name", ["", "-a", "a-", "a--b", "A", "a_b", "a.b", "../x", "a/b", "prod\n", "x" * 40, "ä"]
)
def test_invalid_application_names(name: str) -> None:
    with pytest.raises(InvalidApplicationName) as caught:
        rules.application(name)
    assert caught.value.field == "application"
    assert caught.value.body()["TooLong"]["max_len"] == 39


def test_environment_names_allow_63_characters_but_no_more() -> None:
    assert rules.environment("e" * 63) == "e" * 63
    with pytest.raises(ValidationError, match="1 to 63"):
        rules.environment("e" * 64)


def test_team_names_allow_20_characters_but_no_more() -> None:
    assert rules.team("t" * 20) == "t" * 20
    with pytest.raises(ValidationError) as caught:
        rules.team("t" * 21)
    assert caught.value.field == "team"


def test_commit_ids_are_40_hex_and_stored_lower_case() -> None:
    assert rules.commit_id("source_commit_id", "AB" * 20) == "ab" * 20
    with pytest.raises(ValidationError, match="but is 7 characters"):
        rules.commit_id("source_commit_id", "abcdef1")


@pytest.mark.parametrize("value", ["1", "42", str(2**63 - 1)])
def test_valid_versions(value: str) -> None:
    assert rules.version(value) == int(value)


@pytest.mark.parametrize("value", ["0", "-1", "+1", " 1", "1 ", "1e3", "abc", str(2**63), "١٢", ""])
def test_invalid_versions(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        rules.version(value)
    assert caught.value.field == "version"


def test_display_version_counts_bytes() -> None:
    assert rules.display_version("v1.23.4") == "v1.23.4"
    with pytest.raises(ValidationError):
        rules.display_version("ü" * 8)  # 16 bytes
    with pytest.raises(ValidationError):
        rules.display_version("")


@pytest.mark.parametrize("value", ["Jane", "Jane Doe <jane@example.com>", "--upload-pack=x"])
def test_valid_source_authors(value: str) -> None:
    assert rules.source_author(value) == value


@pytest.mark.parametrize("value", ["<jane@example.com>", "a <b>", "a\nb", "a <b@c> d", "x" * 1001])
def test_invalid_source_authors(value: str) -> None:
    with pytest.raises(ValidationError):
        rules.source_author(value)


def test_limited_text_counts_utf8_bytes_and_refuses_nul() -> None:
    assert rules.limited_text("source_message", "é" * 500) == "é" * 500
    with pytest.raises(ValidationError, match="1002 given"):
        rules.limited_text("source_message", "é" * 501)
    with pytest.raises(ValidationError, match="NUL"):
        rules.limited_text("source_message", "a\0b")


@pytest.mark.parametrize("value", ["https://ci.example.com/run/1", "http://h:8080/x?y=1"])
def test_valid_ci_links(value: str) -> None:
    assert rules.ci_link(value) == value


@pytest.mark.parametrize("value", ["ci.example.com/run", "ftp://h/x", "https://", "https://h/a b"])
def test_invalid_ci_links(value: str) -> None:
    with pytest.raises(ValidationError):
        rules.ci_link(value)


@pytest.mark.parametrize("check", [rules.limited_text, rules.author_header])
def test_a_lone_surrogate_is_a_400_not_a_500(check) -> None:
    # JSON bodies and token claims can carry "\ud800"; no UTF-8 file can.
    with pytest.raises(ValidationError, match="lone surrogate"):
        check("field", "message \ud800")
