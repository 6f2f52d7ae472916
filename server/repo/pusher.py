"""Pushes that may outlive the request that started them.

A request waits for its push only until its deadline. Killing a push at that moment would
throw away a push that was nearly done and force a full resync; so every push runs on one
long-lived thread per worker, and a request that runs out of time answers 503 ``push_pending``
while the push goes on. The repository lock goes with it: whatever finishes the push (marking
the batch pushed, telling Argo CD) runs on that thread after the push, then releases the lock.

The push thread also keeps git's supervisor alive (it gets its parent-death signal when the
thread that started it ends, see ``git._SUPERVISOR``), which a request thread could not
promise once it has answered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait

from server.repo.git import GitError
from server.repo.lock import Holding
from server.repo.manifest_repo import ManifestRepo

log = logging.getLogger(__name__)

#: Why a request answered before its push ended.
STILL_PUSHING = (
    "the push to the manifest repository was still running at the request's deadline; "
    "it goes on in the background"
)


class Pusher:
    """One thread per worker that runs every push and whatever must follow it."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kuberpult-push")

    def push(self, repo: ManifestRepo, timeout: float) -> Future[None]:
        """Start pushing ``repo``'s branch (``timeout`` seconds at most, whoever waits)."""
        return self._thread.submit(repo.push, timeout)

    def push_by(
        self,
        repo: ManifestRepo,
        timeout: float,
        deadline: float,
        holding: Holding,
        finish: Callable[[GitError | None], None],
    ) -> Future[None] | None:
        """Push ``repo`` (``timeout`` seconds at most) and wait for it until ``deadline``.
        Returns the ended push; or None when it goes on, after handing the lock and what
        must follow the push over to the push thread (see ``finish_later``)."""
        pushing = self.push(repo, timeout)
        if finished_by(pushing, deadline):
            return pushing
        # Killed now, a nearly finished push would only force a full resync: it goes on,
        # and keeps the lock until it has ended and been recorded.
        self.finish_later(pushing, finish, holding)
        return None

    def finish_later(
        self,
        pushing: Future[None],
        finish: Callable[[GitError | None], None],
        holding: Holding,
    ) -> None:
        """Once ``pushing`` has ended: ``finish`` with how it ended (None: it succeeded),
        then release the lock ``holding`` holds, whatever happened.
        A push that failed leaves its releases pending for the next export round, which
        syncs the clone first (it is not marked clean)."""
        release_lock = holding.hand_over()

        def complete() -> None:
            try:
                try:
                    pushing.result()
                except GitError as error:
                    log.warning("a push that outlived its request failed: %s", error)
                    finish(error)
                else:
                    finish(None)
            except Exception:
                log.exception("finishing a push that outlived its request failed")
            finally:
                release_lock()

        try:
            # The same thread: this runs after the push, never beside it.
            self._thread.submit(complete)
        except RuntimeError:
            # The worker is shutting down and takes no new background work: finish here,
            # so the batch is still recorded before the lock goes.
            complete()


def finished_by(pushing: Future[None], deadline: float) -> bool:
    """Wait for ``pushing`` until ``deadline`` (``time.monotonic()``); whether it ended."""
    done, _ = wait([pushing], timeout=max(deadline - time.monotonic(), 0.0))
    return bool(done)
