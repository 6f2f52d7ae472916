"""The repository lock: one exporter at a time, across every worker process and thread."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_POLL = 0.005


class RepoLock:
    """An ``flock`` on one file. The kernel drops it when the holder dies, so a killed worker
    never leaves the repository locked."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def held(self, deadline: float) -> Iterator[bool]:
        """Hold the lock, polling until ``deadline`` (``time.monotonic()``); yield whether it
        was acquired."""
        # A fresh open file description per holder, so threads of one worker exclude each
        # other exactly like separate processes do.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(_POLL)
            yield True
        finally:
            os.close(fd)
