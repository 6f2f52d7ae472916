"""Group commit's one pause: let a batch fill up with the releases its clients will send.

Under a steady load, the clients that one push answered send their next release at once; but
the next exporter starts as soon as it has the lock, with the releases that arrived during
that push. Without a pause, 16 steady clients split into two groups that take turns (batches
of 8, 8, 8 ...), or batches alternate between many and few (14, 2, 14, 2 ...): every push
carries half of what it could, and a push costs about the same for 8 releases as for 16.

So an exporter that finds fewer pending releases than the last batch carried *plus* those
that arrived while it was made (when that batch ended a moment ago) waits for them, but only
while they keep coming: it stops at ``GATHER_SECONDS``, or once nothing new has arrived for
``QUIET_SECONDS``. A lone client (the last batch held one, and nobody waited) never waits;
releases that will not come back (a burst of one-off requests) cost ``QUIET_SECONDS`` once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC
from datetime import datetime

from server.models import StoredRelease
from server.store import Store

#: The longest an exporter waits for a batch to fill.
GATHER_SECONDS = 0.05
#: ... and how long it waits for the next release to arrive.
QUIET_SECONDS = 0.015
_POLL = 0.002
#: A last batch older than this says nothing about the load now.
_RECENT_SECONDS = 2.0


def gather(
    store: Store,
    batch: list[StoredRelease],
    deadline: float,
    fetch: Callable[[], list[StoredRelease]],
    limit: int,
) -> list[StoredRelease]:
    """``batch``, or a fuller one fetched again with ``fetch`` after a short wait."""
    expected = min(_expected_size(store), limit)
    if len(batch) >= expected:
        return batch
    started = time.monotonic()
    until = min(started + GATHER_SECONDS, deadline)
    seen, last_arrival = len(batch), started
    while (now := time.monotonic()) < until and now - last_arrival < QUIET_SECONDS:
        time.sleep(_POLL)
        pending = store.count_pending()
        if pending >= expected:
            break
        if pending > seen:
            seen, last_arrival = pending, time.monotonic()
    return fetch()


def _expected_size(store: Store) -> int:
    """How many releases the last push carried plus how many arrived while it was made, if
    it ended a moment ago (else 1)."""
    status, _ = store.view("export")
    size, when = status.get("batch_size"), status.get("last_attempt_at")
    if not status.get("ok") or not isinstance(size, int) or not isinstance(when, str):
        return 1
    try:
        age = datetime.now(UTC) - datetime.fromisoformat(when)
    except ValueError:
        return 1
    if age.total_seconds() > _RECENT_SECONDS:
        return 1
    left_behind = status.get("left_behind")
    return size + (left_behind if isinstance(left_behind, int) and left_behind > 0 else 0)
