"""Fault injection for crash tests: exists only when a test sets ``KUBERPULT_TEST_FAULT``."""

from __future__ import annotations

import os
import signal

from server.config import Config


def maybe_die(config: Config, step: str) -> None:
    """Kill this worker with SIGKILL at ``step`` if the test configuration names it; once, so
    that the restarted worker can recover what the dead one left."""
    if config.test_fault != step:
        return
    fired = config.data_dir / f"fault-fired-{step}"
    if fired.exists():
        return
    fired.touch()
    os.kill(os.getpid(), signal.SIGKILL)
