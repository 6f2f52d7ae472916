"""What the client's command modules share: exit codes, the usage error, the log line."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Mapping

from action.cli import goflags

SUCCESS, FAILURE, USAGE = 0, 1, 2
REQUEST_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*:|/)\S*")


class UsageError(Exception):
    """Bad command-line usage (exit 2); the message is Kuberpult's."""


class HelpShown(Exception):  # noqa: N818 - not an error: the user asked for help
    """``--help`` was given: print ``text`` on stdout and exit 0 (Go's flag package prints
    the listing too, then exits 2: a help that was asked for is not a failure)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def log(message: str) -> None:
    """One diagnostic line on stderr, with Go's ``log`` timestamp."""
    print(f"{time.strftime('%Y/%m/%d %H:%M:%S')} {message}", file=sys.stderr, flush=True)


def parse_subcommand(
    tokens: list[str],
    strings: set[str],
    ints: set[str],
    bools: set[str],
    *,
    title: str,
    help: Mapping[str, str],
) -> goflags.Parsed:
    """A subcommand's flags with Go's ``flag`` rules and Kuberpult's messages; no positional
    leftovers. :raises HelpShown: for ``--help``. :raises UsageError: anything else."""
    try:
        parsed = goflags.parse(tokens, strings, ints, bools, title=title, help=help)
    except goflags.HelpRequested as asked:
        raise HelpShown(asked.usage) from None
    except goflags.FlagError as error:
        raise UsageError(f"error while parsing command line arguments, error: {error}") from None
    if parsed.rest:
        raise UsageError(f'these arguments are not recognised: "{" ".join(parsed.rest)}"')
    return parsed
