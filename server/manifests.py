"""Manifest content: YAML validation, comparison as parsed YAML, and Kuberpult-style diffs.

Manifests are stored and written byte for byte; they are parsed only to check them and to
compare two versions of the same release.
"""

from __future__ import annotations

import codecs
import difflib
from typing import Any

import yaml

from server.errors import ValidationError

try:  # the C parser is much faster on large manifests; fall back when libyaml is missing
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

# Anchors and aliases are legal YAML, but an alias re-uses a whole subtree, so a few hundred
# bytes can stand for billions of nodes. We count the nodes a reader would see after expanding
# every alias and refuse beyond this.
MAX_EXPANDED_NODES = 2_000_000
MAX_DEPTH = 200


def check_yaml(environment: str, content: bytes) -> None:
    """Raise ``ValidationError`` unless ``content`` is UTF-8 YAML without an alias bomb."""
    field = f"manifests[{environment}]"
    try:
        _check_utf8(content)
    except UnicodeDecodeError as error:
        raise ValidationError(
            field, f"Manifest for environment {environment!r} is not valid UTF-8: {error}"
        ) from None
    if b"\0" in content:
        raise ValidationError(field, f"Manifest for environment {environment!r} contains NUL")
    try:
        # The parser reads the UTF-8 bytes itself: no decoded copy of a large manifest.
        expanded = _expanded_node_count(content)
    except yaml.YAMLError as error:
        raise ValidationError(
            field,
            f"Manifest for environment {environment!r} is not valid YAML: {_one_line(error)}",
        ) from None
    except _TooDeep:
        raise ValidationError(
            field, f"Manifest for environment {environment!r} nests deeper than {MAX_DEPTH}"
        ) from None
    except _Recursive:
        raise ValidationError(
            field,
            f"Manifest for environment {environment!r} holds an alias inside its own anchor "
            "(a recursive document)",
        ) from None
    if expanded > MAX_EXPANDED_NODES:
        raise ValidationError(
            field,
            f"Manifest for environment {environment!r} expands to more than "
            f"{MAX_EXPANDED_NODES} nodes through YAML aliases",
        )


def _check_utf8(content: bytes, chunk: int = 1 << 20) -> None:
    """Validate UTF-8 piecewise, so a large manifest is never held twice."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(content)
    for start in range(0, len(content), chunk):
        decoder.decode(view[start : start + chunk], final=False)
    decoder.decode(b"", final=True)


class _TooDeep(Exception):
    pass


class _Recursive(Exception):
    pass


def _expanded_node_count(text: bytes) -> int:
    """Count nodes after alias expansion, walking parser events only (nothing is built)."""
    sizes: dict[str, int] = {}
    # Each frame: [anchor or None, node count so far]
    stack: list[list[Any]] = [[None, 0]]
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            if any(frame[0] == event.anchor for frame in stack):
                raise _Recursive  # an alias inside its own anchor: an endless document
            stack[-1][1] += sizes.get(event.anchor or "", 1)
        elif isinstance(event, yaml.ScalarEvent):
            stack[-1][1] += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(stack) > MAX_DEPTH:
                raise _TooDeep
            stack.append([event.anchor, 1])
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, count = stack.pop()
            if anchor:
                sizes[anchor] = count
            stack[-1][1] += count
        if stack[0][1] > MAX_EXPANDED_NODES:
            break
    return int(stack[0][1])


def _one_line(error: yaml.YAMLError) -> str:
    return " ".join(str(error).split())


def same_yaml(first: bytes, second: bytes) -> bool:
    """Whether two (already checked) manifests hold the same YAML documents."""
    if first == second:
        return True
    return _documents(first) == _documents(second)


def _documents(content: bytes) -> list[Any]:
    return list(yaml.load_all(content.decode("utf-8"), Loader=_Loader))  # noqa: S506 - safe loader


def unified_diff(old: str, new: str, old_name: str, new_name: str) -> str:
    """A unified diff of two texts in the gotextdiff style Kuberpult answers with."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=old_name,
        tofile=new_name,
    )
    out = []
    for line in lines:
        if line.startswith(("---", "+++")):
            out.append(line.rstrip() + "\n")
        elif line.endswith("\n"):
            out.append(line)
        else:
            out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out)
