"""Unit tests for manifest checks and comparison, without a server."""

from __future__ import annotations

import resource
import time

import pytest
import yaml

from server.errors import ValidationError
from server.release import manifests
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


# Pairs the comparison calls the same YAML: Kuberpult's canonicalisation ignores how a
# manifest is written, and a loaded value compares as the safe loader reads it.
SAME = [
    (b"a: 1\nb: 2\n", b"b: 2\na: 1"),  # key order
    (b"a: x\n", b"'a': \"x\""),  # quoting style
    (b"a:\n  - 1\n  - {b: c}\n", b"{a: [1, {b: c}]}"),  # flow vs block style
    (b"# head\na: 1  # trailing\n", b"a: 1"),  # comments
    (b"a: 1\n---\nb: 2\n", b"---\na: 1\n...\n---\n{b: 2}"),  # multi-document
    (b"a: |\n  x\n", b'a: "x\\n"'),  # block scalar vs escaped string
    (b"a: &x {b: 1}\nc: *x\n", b"a: {b: 1}\nc: {b: 1}\n"),  # an alias is its node
    (b"base: &b {x: 1, y: 1}\nc:\n  <<: *b\n  y: 2\n", b"base: {x: 1, y: 1}\nc: {x: 1, y: 2}"),
    (b"c: {<<: [{x: 1}, {x: 2, y: 2}]}", b"c: {x: 1, y: 2}"),  # the first merged key wins
    (b"a: 1\na: 2\n", b"a: 2"),  # a repeated key: the last wins
    (b"a: 1", b"a: 01"),  # as the safe loader reads them (YAML 1.1 octal) ...
    (b"a: 8", b"a: 010"),
    (b"a: 1", b"a: 0x1"),
    (b"a: 1000", b"a: 1_000"),
    (b"a: 1", b"a: 1.0"),  # ... and as Python compares what it reads
    (b"a: 1", b"a: true"),
    (b"a: true", b"a: yes"),
    (b"a: ~", b"a:"),
    (b"a: .nan", b"a: .NaN"),
    (b"a: 2001-12-14t21:59:43-05:00", b"a: 2001-12-15 02:59:43Z"),  # the same instant
    (b"a: '1'", b"a: !!str 1"),
    (b"a: 1", b"a: !<tag:yaml.org,2002:int> 1"),
    (b"a: !Ref x", b"a:   !Ref 'x'  # the same tag and text\n"),
    (b"a: !Ref {b: 1, c: 2}", b"a: !Ref\n  c: 2\n  b: 1\n"),
    (b"%TAG !e! tag:example.com,2000:\n---\na: !e!x 1", b"a: !<tag:example.com,2000:x> 1"),
    (b"a: !!int abc", b"a: !!int 'abc'"),  # unreadable by its tag: compared as text
    (b"? [1, 2]\n: a\n", b"{[1, 2]: a}"),  # a key the loader cannot hash
    (b"", b"# only a comment\n"),
]

DIFFERENT = [
    (b"a: !Ref x", b"a: !Ref y"),
    (b"a: !Ref x", b"a: x"),
    (b"a: !Ref {b: 1}", b"a: {b: 1}"),
    (b"a: !!int abc", b"a: abc"),
    (b"a: 1", b"a: '1'"),
    (b"a: [1, 2]", b"a: [2, 1]"),
    (b"a: 1\n---\nb: 2\n", b"a: 1\n"),
    (b"a: 1\n---\nb: 2\n", b"a: 1\nb: 2\n"),
    (b"a: !!set {x, y}", b"a: {x: null, y: null}"),
    (b"a: !!omap [x: 1, y: 2]", b"a: !!omap [y: 2, x: 1]"),
    (b"a: 2001-12-14", b"a: 2001-12-14 00:00:00"),
    (b"a: 2001-12-14t21:59:43-05:00", b"a: 2001-12-14 21:59:43"),
    (b"{}", b'{ "different": "yes" }'),
    (b"", b"---\n"),  # no document vs one null document
]


@pytest.mark.parametrize(("first", "second"), SAME)
def test_same_yaml_ignores_how_a_manifest_is_written(first: bytes, second: bytes) -> None:
    manifests.check_yaml("development", first)
    manifests.check_yaml("development", second)
    assert manifests.same_yaml(first, second)
    assert manifests.same_yaml(second, first)


@pytest.mark.parametrize(("first", "second"), DIFFERENT)
def test_same_yaml_sees_other_content(first: bytes, second: bytes) -> None:
    assert not manifests.same_yaml(first, second)
    assert not manifests.same_yaml(second, first)


@pytest.mark.parametrize(
    "document",
    [
        b"a: !Ref x\n",
        b"a: !!int abc\n",
        b"a: !!float x\n",
        b"a: !!bool maybe\n",
        b"a: !!null x\n",
        b"a: !!timestamp yesterday\n",
        b"a: !!binary '!!'\n",
        b"a: !!map x\n",
        b"a: !!int [1]\n",
        b"a: !!python/object/apply:os.system ['true']\n",
        b"a: !!omap [1, 2]\n",
        b"a: <<\n",
        b"a: {<<: 1}\n",
        b"a: {<<: [1]}\n",
        b"=: 1\nb: =\n",
        b"{.nan: 1, .NaN: 2}\n",
        b"a: &x 1\nb: &x [2]\nc: *x\n",  # an anchor defined again: the alias names the last
        b"a: 0x" + b"f" * 5000 + b"\n",  # past Python's limit for decimal digits
        b"a: " + b"9" * 5000 + b"\n",
    ],
)
def test_every_accepted_manifest_compares_without_an_error(document: bytes) -> None:
    """The check accepts these; comparing them builds no tagged object and never raises."""
    manifests.check_yaml("development", document)
    assert manifests.same_yaml(document, b"# reformatted\n" + document)
    assert not manifests.same_yaml(document, document + b"extra: key\n")


def test_same_yaml_agrees_with_the_safe_loader_on_plain_yaml() -> None:
    """Whatever the safe loader reads as equal, the comparison calls the same, and back."""
    loaded = {}
    for document in (document for pair in SAME + DIFFERENT for document in pair):
        if b"!" in document:  # a tag the safe loader may refuse
            continue
        try:
            loaded[document] = list(yaml.safe_load_all(document))
        except yaml.YAMLError:  # e.g. a key it cannot hash
            continue
    assert len(loaded) > 30
    for first, first_loaded in loaded.items():
        for second, second_loaded in loaded.items():
            expected = first_loaded == second_loaded
            assert manifests.same_yaml(first, second) == expected, (first, second)


@pytest.mark.parametrize("document", [b"a: *nope\n", b"a: &x 1\n---\nb: *x\n"])
def test_an_alias_without_an_anchor_is_refused(document: bytes) -> None:
    with pytest.raises(ValidationError, match=r"alias \*(nope|x) names no anchor") as caught:
        manifests.check_yaml("development", document)
    assert caught.value.field == "manifests[development]"
    assert not manifests.same_yaml(document, document + b"\n")


@pytest.mark.parametrize("document", [b"x: &a [*a]\n", b"x: &a {<<: *a}\n", b"a: [\n"])
def test_an_unreadable_stored_manifest_counts_as_different(document: bytes) -> None:
    assert not manifests.same_yaml(document, document + b"\n")
    assert manifests.same_yaml(document, document)  # the same bytes are the same


def test_aliases_compare_without_expanding() -> None:
    lines = ["a0: &a0 [x, y]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 5)}]" for i in range(1, 9)]
    document = "\n".join(lines).encode()
    manifests.check_yaml("development", document)  # 1.5 million nodes once expanded
    started = time.monotonic()
    assert manifests.same_yaml(document, document + b"\n# reformatted\n")
    assert not manifests.same_yaml(document, document.replace(b"[x, y]", b"[x, z]"))
    assert time.monotonic() - started < 1


def test_deep_nesting_within_the_limit_compares() -> None:
    document = b"[" * manifests.MAX_DEPTH + b"]" * manifests.MAX_DEPTH
    manifests.check_yaml("development", document)
    assert manifests.same_yaml(document, document + b"\n")
    assert not manifests.same_yaml(document, document.replace(b"[]", b"[1]"))
