"""Command-line parsing with the rules of Go's ``flag`` package, which Kuberpult's client uses.

``-name`` and ``--name`` are the same; values come as ``--name value`` or ``--name=value``;
boolean flags take no separate value; parsing stops at the first non-flag token or after
``--``. Every flag may repeat; the caller decides how often it may appear.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field

_INT = re.compile(r"[+-]?[0-9]+")
_BOOL = {
    "1": True,
    "t": True,
    "T": True,
    "TRUE": True,
    "true": True,
    "True": True,
    "0": False,
    "f": False,
    "F": False,
    "FALSE": False,
    "false": False,
    "False": False,
}


class FlagError(Exception):
    """A token the flag set cannot take, worded like Go's ``flag`` package."""


class HelpRequested(FlagError):
    """``-h``, ``-help`` or ``--help``: ``usage`` lists the flag set (Go prints it too)."""

    def __init__(self, usage: str) -> None:
        super().__init__("flag: help requested")
        self.usage = usage


def usage(
    title: str, strings: set[str], ints: set[str], bools: set[str], help: Mapping[str, str]
) -> str:
    """The flag listing in Go's ``PrintDefaults`` layout: ``  -name type`` then the help."""
    lines = [f"Usage of {title}:"]
    for name in sorted(strings | ints | bools, key=str.lower):
        kind = " string" if name in strings else " int" if name in ints else ""
        lines.append(f"  -{name}{kind}\n    \t{help.get(name, '')}")
    return "\n".join(lines) + "\n"


def _suggestion(name: str, known: set[str]) -> str:
    """`` (did you mean -x?)`` for a near miss: another separator or case, or a typo."""
    squashed = {re.sub(r"[-_]", "", flag).lower(): flag for flag in known}
    match = squashed.get(re.sub(r"[-_]", "", name).lower())
    if match is None:
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        match = close[0] if close else None
    return f" (did you mean -{match}?)" if match else ""


@dataclass
class Parsed:
    """What a flag set read: values per flag, the flags in order, and the leftover tokens."""

    values: dict[str, list[str]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    rest: list[str] = field(default_factory=list)

    def all(self, name: str) -> list[str]:
        """Every value given for ``name``, in order."""
        return self.values.get(name, [])

    def first(self, name: str) -> str | None:
        """The first value given for ``name``."""
        found = self.values.get(name)
        return found[0] if found else None

    def flag(self, name: str) -> bool:
        """A boolean flag's last value."""
        found = self.values.get(name) or []
        return bool(found) and _BOOL[found[-1]]


def parse(
    tokens: list[str],
    strings: set[str],
    ints: set[str],
    bools: set[str],
    *,
    title: str = "flag set",
    help: Mapping[str, str] | None = None,
) -> Parsed:
    """Parse ``tokens``. :raises FlagError: for an unknown flag or a bad or missing value;
    ``HelpRequested`` (with the listing of ``help``) for ``-h``/``--help``."""
    parsed = Parsed()
    index = 0
    while index < len(tokens):
        argument = tokens[index]
        if argument == "--":
            index += 1
            break
        if len(argument) < 2 or not argument.startswith("-"):
            break
        body = argument[2:] if argument.startswith("--") else argument[1:]
        if not body or body.startswith("-") or body.startswith("="):
            raise FlagError(f"bad flag syntax: {argument}")
        name, has_value, value = body.partition("=")
        if name in ("h", "help"):
            raise HelpRequested(usage(title, strings, ints, bools, help or {}))
        index += 1
        if name in bools:
            if has_value and value not in _BOOL:
                raise FlagError(f'invalid boolean value "{value}" for -{name}: parse error')
            value = value if has_value else "true"
        elif name in strings or name in ints:
            if not has_value:
                if index >= len(tokens):
                    raise FlagError(f"flag needs an argument: -{name}")
                value = tokens[index]
                index += 1
            if name in ints and (not _INT.fullmatch(value) or not -(2**63) <= int(value) < 2**63):
                raise FlagError(
                    f'invalid value "{value}" for flag -{name}: the provided value "{value}" '
                    "is not an integer"
                )
        else:
            known = strings | ints | bools
            raise FlagError(f"flag provided but not defined: -{name}{_suggestion(name, known)}")
        parsed.values.setdefault(name, []).append(value)
        parsed.order.append(name)
    parsed.rest = tokens[index:]
    return parsed
