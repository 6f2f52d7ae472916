"""Manifest content: YAML validation, comparison as parsed YAML, and Kuberpult-style diffs.

Manifests are stored and written byte for byte; they are parsed only to check them and to
compare two versions of the same release.

Over 250 lines: validation and comparison both walk PyYAML's event stream; one module keeps one
reading of what manifest bytes mean.
"""

from __future__ import annotations

import codecs
import datetime
import difflib
import hashlib
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
    except _Undefined as error:
        raise ValidationError(
            field,
            f"Manifest for environment {environment!r} is not valid YAML: the alias *{error} "
            "names no anchor before it in its document",
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


class _Undefined(Exception):
    """An alias names no anchor before it in its document."""


def _expanded_node_count(text: bytes) -> int:
    """Count nodes after alias expansion, walking parser events only (nothing is built)."""
    sizes: dict[str, int] = {}
    # Each frame: [anchor or None, node count so far]
    stack: list[list[Any]] = [[None, 0]]
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.DocumentStartEvent):
            sizes.clear()  # anchors belong to their document
        elif isinstance(event, yaml.AliasEvent):
            if any(frame[0] == event.anchor for frame in stack):
                raise _Recursive  # an alias inside its own anchor: an endless document
            if event.anchor not in sizes:
                raise _Undefined(event.anchor)  # the loader could not read it
            stack[-1][1] += sizes[event.anchor]
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
    """Whether two manifests hold the same YAML documents (Kuberpult's canonicalisation).

    Compared from the parser's events, so no tagged object is ever constructed: formatting,
    comments, quoting, flow or block style and the order of mapping keys do not count, aliases
    count as the node they name, and merge keys (``<<``) are merged. A scalar of a standard tag
    compares as the value the safe loader reads (``01``, ``1``, ``1.0`` and ``true`` are all
    equal, as Python compares them); any other tag (``!Ref x``), or a value its tag cannot read
    (``!!int abc``), compares by tag and text. A manifest the comparison cannot read counts as
    different, never as an error.
    """
    if first == second:
        return True
    try:
        return _canonical(first) == _canonical(second)
    except (yaml.YAMLError, _Recursive, _Undefined):
        return False


_TAG = "tag:yaml.org,2002:"
_MERGE, _STR, _VALUE = _TAG + "merge", _TAG + "str", _TAG + "value"
# The safe loader's scalar constructors: they build only plain values.
_SCALARS: dict[str, Any] = {
    _TAG + name: yaml.constructor.SafeConstructor.yaml_constructors[_TAG + name]
    for name in ("null", "bool", "int", "float", "binary", "timestamp")
}
# The safe loader's implicit tags (resolving keeps no state: no path resolvers are set).
_RESOLVE: Any = yaml.resolver.Resolver().resolve


class _Item:
    """A finished node: its digest; a mapping's pairs, or a sequence's mappings' pairs when
    it may be merged; whether it is the merge key ``<<``."""

    __slots__ = ("digest", "merge_key", "pairs", "sources")

    def __init__(
        self,
        digest: bytes,
        pairs: dict[bytes, bytes] | None = None,
        sources: list[dict[bytes, bytes]] | None = None,
        merge_key: bool = False,
    ) -> None:
        self.digest = digest
        self.pairs = pairs
        self.sources = sources
        self.merge_key = merge_key


class _Frame:
    """An open sequence or mapping."""

    __slots__ = ("anchor", "digests", "key", "mapping", "merged", "own", "sources", "tag")

    def __init__(self, mapping: bool, tag: str, anchor: str | None, mergeable: bool) -> None:
        self.mapping, self.tag, self.anchor = mapping, tag, anchor
        self.digests: list[bytes] = []
        # A sequence that may be merged (anchored, or the value of ``<<``) keeps the pairs of
        # its mappings; None once an item is no mapping.
        self.sources: list[dict[bytes, bytes]] | None = [] if mergeable and not mapping else None
        self.key: _Item | None = None
        self.merged: dict[bytes, bytes] = {}
        self.own: dict[bytes, bytes] = {}

    def add(self, item: _Item) -> None:
        if not self.mapping:
            self.digests.append(item.digest)
            if self.sources is not None:
                if item.pairs is None:
                    self.sources = None
                else:
                    self.sources.append(item.pairs)
            return
        if self.key is None:
            self.key = item
            return
        key, self.key = self.key, None
        sources = None
        if key.merge_key:
            sources = [item.pairs] if item.pairs is not None else item.sources
        if sources is None:  # an ordinary pair (an invalid merge too): the last key wins
            self.own[key.digest] = item.digest
            return
        for pairs in sources:  # as the safe loader merges: the first merged key wins
            for merged_key, merged_value in pairs.items():
                self.merged.setdefault(merged_key, merged_value)

    def close(self) -> _Item:
        tag = self.tag.encode("utf-8", "surrogatepass")
        if not self.mapping:
            return _Item(_digest(b"sequence", tag, *self.digests), sources=self.sources)
        pairs = {**self.merged, **self.own}  # the mapping's own keys win over merged ones
        return _Item(_digest(b"mapping", tag, *sorted(k + v for k, v in pairs.items())), pairs)


def _canonical(content: bytes) -> list[bytes]:
    """One digest per document; equal digests for documents the comparison calls equal."""
    documents: list[bytes] = []
    anchors: dict[str, _Item | _Frame] = {}
    stack: list[_Frame] = []
    for event in yaml.parse(content, Loader=_Loader):
        if isinstance(event, yaml.DocumentStartEvent):
            anchors.clear()  # anchors belong to their document
            continue
        if isinstance(event, yaml.CollectionStartEvent):
            mapping = isinstance(event, yaml.MappingStartEvent)
            tag = event.tag
            if tag is None or tag == "!":
                tag = _RESOLVE(
                    yaml.MappingNode if mapping else yaml.SequenceNode, None, event.implicit
                )
            merged = bool(stack) and stack[-1].key is not None and stack[-1].key.merge_key
            frame = _Frame(mapping, tag, event.anchor, bool(event.anchor) or merged)
            if event.anchor:
                anchors[event.anchor] = frame
            stack.append(frame)
            continue
        if isinstance(event, yaml.AliasEvent):
            target = anchors.get(event.anchor or "")
            if target is None:
                raise _Undefined
            if isinstance(target, _Frame):
                raise _Recursive  # an alias inside its own anchor
            item = target
        elif isinstance(event, yaml.ScalarEvent):
            item = _scalar(event)
            if event.anchor:
                anchors[event.anchor] = item
        elif isinstance(event, yaml.CollectionEndEvent):
            frame = stack.pop()
            item = frame.close()
            if frame.anchor and anchors.get(frame.anchor) is frame:
                anchors[frame.anchor] = item
        else:
            continue
        if stack:
            stack[-1].add(item)
        else:
            documents.append(item.digest)
    return documents


def _scalar(event: yaml.ScalarEvent) -> _Item:
    tag, value = event.tag, event.value
    if tag is None or tag == "!":
        tag = _RESOLVE(yaml.ScalarNode, value, event.implicit)
    text = value.encode("utf-8", "surrogatepass")
    if tag in (_STR, _VALUE):  # the loader reads ``=`` as a string, in a key
        return _Item(_digest(b"str", text))
    loaded = _load(tag, value)
    if loaded is not _UNREAD:
        return _Item(_digest(*_loaded(loaded)))
    tagged = _digest(b"tagged", tag.encode("utf-8", "surrogatepass"), text)
    return _Item(tagged, merge_key=tag == _MERGE)


_UNREAD = object()


def _load(tag: str, value: str) -> object:
    """The safe loader's value of a scalar of a standard tag, else ``_UNREAD``."""
    construct = _SCALARS.get(tag)
    if construct is None:
        return _UNREAD
    try:
        return construct(yaml.constructor.SafeConstructor(), yaml.ScalarNode(tag, value))
    except Exception:  # e.g. ``!!int abc``: compared by tag and text instead
        return _UNREAD


def _loaded(value: object) -> tuple[bytes, ...]:
    """Parts equal exactly when Python calls the loaded values equal (but NaN equals NaN)."""
    if value is None:
        return (b"null",)
    if isinstance(value, float) and not value.is_integer():
        return (b"number", repr(value).encode()) if value == value else (b"nan",)
    if isinstance(value, bool | int | float):  # True == 1 == 1.0
        return (b"number", hex(int(value)).encode())
    if isinstance(value, bytes):
        return (b"binary", value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            return (b"datetime", value.isoformat().encode())
        return (b"instant", value.astimezone(datetime.UTC).isoformat().encode())
    if isinstance(value, datetime.date):
        return (b"date", value.isoformat().encode())
    return (b"other", repr(value).encode("utf-8", "surrogatepass"))  # pragma: no cover


def _digest(*parts: bytes) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


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
