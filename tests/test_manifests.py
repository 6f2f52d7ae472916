"""Unit tests for manifest checks and comparison, without a server."""

from __future__ import annotations

import resource
import time

import pytest

from server import manifests
from server.errors import ValidationError
from tests.test_release_rejections import BOMB


@pytest.mark.parametrize(
    "content",
    [b"key: value", b"a: 1\n---\nb: 2\n", b"", b"# only a comment\n", b"a: &x 1\nb: *x\n"],
)
def test_valid_yaml_passes(content: bytes) -> None:
    manifests.check_yaml("development", content)


@pytest.mark.parametrize(
    "content",
    [
        b"key: [unclosed",
        b"key: {unclosed",
        b"key:\n\t- value",
        b"a:\n  b: 1\n c: 2",
        b'key: "unclosed',
    ],
)
def test_invalid_yaml_is_refused_naming_the_environment(content: bytes) -> None:
    with pytest.raises(ValidationError, match="not valid YAML") as caught:
        manifests.check_yaml("development", content)
    assert caught.value.field == "manifests[development]"
    assert "'development'" in caught.value.message


def test_billion_laughs_is_refused_quickly_without_memory_growth() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(ValidationError, match="aliases"):
        manifests.check_yaml("development", BOMB)
    assert time.monotonic() - started < 1
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(ValidationError, match="deeper"):
        manifests.check_yaml("development", b"[" * 300 + b"]" * 300)


def test_same_yaml_ignores_formatting_but_not_content() -> None:
    spaced = b'{ "different":                  "yes" }'
    assert manifests.same_yaml(spaced, b'{ "different": "yes" }')
    assert manifests.same_yaml(b"a: 1\nb: 2\n", b"b: 2\na: 1")
    assert not manifests.same_yaml(b"{}", b'{ "different": "yes" }')
    assert not manifests.same_yaml(b"a: 1\n---\nb: 2\n", b"a: 1\n")


def test_diff_matches_kuberpults_example() -> None:
    diff = manifests.unified_diff(
        "{}", '{ "different": "yes" }', "acceptance-existing", "acceptance-request"
    )
    assert diff == (
        "--- acceptance-existing\n+++ acceptance-request\n@@ -1 +1 @@\n-{}\n"
        '\\ No newline at end of file\n+{ "different": "yes" }\n\\ No newline at end of file\n'
    )


@pytest.mark.parametrize("document", [b"x: &a [*a]\n", b"x: &a {b: [1, *a]}\n"])
def test_a_recursive_alias_is_refused(document: bytes) -> None:
    with pytest.raises(ValidationError, match="alias inside its own anchor"):
        manifests.check_yaml("development", document)
