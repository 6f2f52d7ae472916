"""YAML as Kuberpult writes it: ``sigs.k8s.io/yaml`` (JSON, then go-yaml v2's emitter).

Argo CD reads the files either way; byte parity matters because the manifest repository is
shared: a server that wrote the same objects with other quoting or key order would rewrite
every environment's file on its first commit after a switch from Kuberpult.

The values are what JSON gives: dicts with string keys, lists, strings and booleans. go-yaml's
rules reproduced here: keys in its "natural" order (digit runs compare as numbers, letters after
other characters), lists under a key not indented, ``{}`` for an empty object, strings that
would read back as something else (``""``, ``true``, ``1.5``, ``2024-01-01``) double-quoted,
strings that cannot be plain (``*``, ``a: b``) single-quoted, long plain or single-quoted
strings folded at spaces past column 80, multi-line strings as literal blocks.

Over 250 lines: go-yaml's quoting, folding and key order are one set of rules; split, each part
would be wrong alone.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from collections.abc import Sequence

_WIDTH = 80
_NULLS = {"", "~", "null", "Null", "NULL"}
_BOOLS = {
    *"y Y yes Yes YES on On ON true True TRUE".split(),
    *"n N no No NO off Off OFF false False FALSE".split(),
}
_SPECIAL_FLOATS = {
    f"{sign}{word}" for word in (".inf", ".Inf", ".INF") for sign in ("", "+", "-")
} | {".nan", ".NaN", ".NAN"}
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INT = re.compile(r"[-+]?(0[xX][0-9a-fA-F]+|0[oO]?[0-7]+|0[bB][01]+|[1-9][0-9]*|0)")
_BASE60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"(?:[Tt ][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(?:\.[0-9]+)?(?:Z|[-+][0-9]{2}:[0-9]{2})?)?"
)


def dump(value: object) -> str:
    """One YAML document, ending with a newline."""
    lines: list[str] = []
    if isinstance(value, Mapping):
        if not value:
            return "{}\n"
        _mapping(value, 0, lines)
    elif isinstance(value, list):
        if not value:
            return "[]\n"
        _sequence(value, 0, lines)
    else:
        lines.append(_scalar(value, 0, 0))
    return "\n".join(lines) + "\n"


def _mapping(value: Mapping[str, object], indent: int, lines: list[str]) -> None:
    for key in sorted(value, key=functools.cmp_to_key(_compare_keys)):
        prefix = " " * indent + _key(key) + ":"
        _entry(prefix, value[key], indent, lines, in_mapping=True)


def _sequence(value: Sequence[object], indent: int, lines: list[str]) -> None:
    for item in value:
        prefix = " " * indent + "-"
        if isinstance(item, Mapping) and item:
            # The first key shares the dash's line; the others line up under it.
            nested: list[str] = []
            _mapping(item, indent + 2, nested)
            lines.append(prefix + " " + nested[0][indent + 2 :])
            lines.extend(nested[1:])
        elif isinstance(item, list) and item:
            nested = []
            _sequence(item, indent + 2, nested)
            lines.append(prefix + " " + nested[0][indent + 2 :])
            lines.extend(nested[1:])
        else:
            _entry(prefix, item, indent, lines, in_mapping=False)


def _entry(prefix: str, item: object, indent: int, lines: list[str], *, in_mapping: bool) -> None:
    if isinstance(item, Mapping):
        if not item:
            lines.append(prefix + " {}")
            return
        lines.append(prefix)
        _mapping(item, indent + 2, lines)
    elif isinstance(item, list):
        if not item:
            lines.append(prefix + " []")
            return
        lines.append(prefix)
        # go-yaml does not indent a list that is a mapping's value.
        _sequence(item, indent if in_mapping else indent + 2, lines)
    else:
        text = _scalar(item, len(prefix) + 1, indent + 2)
        lines.append(prefix + " " + text)


def _key(key: str) -> str:
    style = _style(key)
    if style == "plain":
        return key
    if style == "single" and "\n" not in key:
        return "'" + key.replace("'", "''") + "'"
    return _double_quoted(key)


def _scalar(value: object, column: int, indent: int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if value is None:
        return "null"
    if not isinstance(value, str):
        raise TypeError(f"cannot write {type(value).__name__} as YAML")
    style = _style(value)
    if style == "literal":
        return _literal(value, indent)
    if style == "plain":
        return _fold(value, column, indent, quote="")
    if style == "single":
        return _fold(value, column, indent, quote="'")
    return _double_quoted(value)


def _resolves_to_string(text: str) -> bool:
    """Whether go-yaml reads ``text``, written plain, back as a string."""
    if text in _NULLS or text in _BOOLS or text in _SPECIAL_FLOATS or text == "<<":
        return False
    if text[:1] in "0123456789+-.":
        plain = text.replace("_", "")
        if _INT.fullmatch(plain) or _FLOAT.fullmatch(plain) or _BASE60.fullmatch(text):
            return False
        if _TIMESTAMP.fullmatch(text):
            return False
    return True


def _style(text: str) -> str:
    """go-yaml's choice: plain, single, double or literal (libyaml's analysis, block context)."""
    if not text or not _resolves_to_string(text):
        return "double"
    # U+2028 and U+2029 are line breaks to a YAML reader: only escaped do they read back.
    special = any(not _printable(c) or c in "\u2028\u2029" for c in text)
    if "\n" in text:
        if special or text != text.strip(" ") or " \n" in text or text.startswith("\n"):
            return "double"
        return "literal"
    if special:
        return "double"
    if text[0] == " " or text[-1] == " ":
        return "single"
    if text.startswith(("---", "...")):
        return "single"
    first = text[0]
    followed_by_blank = len(text) == 1 or text[1] in " \t"
    if first in "#,[]{}&*!|>'\"%@`":
        return "single"
    if first in "?:-" and followed_by_blank:
        return "single"
    for index in range(1, len(text)):
        char = text[index]
        after_blank = index + 1 == len(text) or text[index + 1] in " \t"
        if char == ":" and after_blank:
            return "single"
        if char == "#" and text[index - 1] in " \t":
            return "single"
    return "plain"


def _printable(char: str) -> bool:
    """libyaml's IS_PRINTABLE: a tab, a character past U+FFFD or a control is not (go-yaml
    double-quotes such strings)."""
    code = ord(char)
    return (
        code == 0x0A
        or 0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or (0xE000 <= code <= 0xFFFD and code != 0xFEFF)
    )


def _fold(text: str, column: int, indent: int, *, quote: str) -> str:
    """A plain or single-quoted scalar, broken at single spaces once past the width."""
    out: list[str] = [quote]
    column += len(quote)
    previous_space = False
    for index, char in enumerate(text):
        if char == " ":
            last = index == len(text) - 1
            next_is_space = not last and text[index + 1] == " "
            may_break = not previous_space and column > _WIDTH and not next_is_space
            if may_break and (not quote or (index != 0 and not last)):
                out.append("\n" + " " * indent)
                column = indent
            else:
                out.append(" ")
                column += 1
            previous_space = True
            continue
        out.append("''" if char == "'" and quote else char)
        column += 2 if char == "'" and quote else 1
        previous_space = False
    out.append(quote)
    return "".join(out)


def _literal(text: str, indent: int) -> str:
    if text.endswith("\n\n"):
        header = "|+"
    elif text.endswith("\n"):
        header = "|"
    else:
        header = "|-"
    body = text[:-1] if text.endswith("\n") else text
    pad = " " * indent
    return header + "".join("\n" + (pad + line if line else "") for line in body.split("\n"))


_ESCAPES = {
    "\0": "\\0",
    "\a": "\\a",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
    "\x1b": "\\e",
    '"': '\\"',
    "\\": "\\\\",
    "\x85": "\\N",
    "\u2028": "\\L",
    "\u2029": "\\P",
}


def _double_quoted(text: str) -> str:
    out = ['"']
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif not _printable(char):
            code = ord(char)
            if code <= 0xFF:
                out.append(f"\\x{code:02X}")
            elif code <= 0xFFFF:
                out.append(f"\\u{code:04X}")
            else:
                out.append(f"\\U{code:08X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _compare_keys(a: str, b: str) -> int:
    """go-yaml v2's key order: runes compared one by one; where they differ, a letter sorts
    after a non-letter, and runs of digits compare by their value."""
    for i in range(min(len(a), len(b))):
        if a[i] == b[i]:
            continue
        a_letter, b_letter = a[i].isalpha(), b[i].isalpha()
        if a_letter and b_letter:
            return -1 if a[i] < b[i] else 1
        if a_letter or b_letter:
            return 1 if a_letter else -1
        seed = 0
        if "0" in (a[i], b[i]):
            # A zero inside a longer number ("10" against "12") counts the earlier digits.
            back = i - 1
            while back >= 0 and _is_digit(a[back]):
                if a[back] != "0":
                    seed = 1
                    break
                back -= 1
        a_number, a_end = _digit_run(a, i, seed)
        b_number, b_end = _digit_run(b, i, seed)
        if a_number != b_number:
            return -1 if a_number < b_number else 1
        if a_end != b_end:
            return -1 if a_end < b_end else 1
        return -1 if a[i] < b[i] else 1
    return (len(a) > len(b)) - (len(a) < len(b))


def _digit_run(text: str, start: int, seed: int) -> tuple[int, int]:
    number, end = seed, start
    while end < len(text) and _is_digit(text[end]):
        number = number * 10 + (ord(text[end]) - ord("0"))
        end += 1
    return number, end


def _is_digit(char: str) -> bool:
    return unicodedata.category(char) == "Nd"
