"""What the client's command modules share: exit codes, the usage error, the log line."""

from __future__ import annotations

import re
import sys
import time

SUCCESS, FAILURE, USAGE = 0, 1, 2
REQUEST_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*:|/)\S*")


class UsageError(Exception):
    """Bad command-line usage (exit 2); the message is Kuberpult's."""


def log(message: str) -> None:
    """One diagnostic line on stderr, with Go's ``log`` timestamp."""
    print(f"{time.strftime('%Y/%m/%d %H:%M:%S')} {message}", file=sys.stderr, flush=True)
