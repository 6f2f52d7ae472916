"""Group commit's one pause: let a batch fill up as much as the last one did.

Under a steady load, the clients that one push answered send their next release at once; but
the next exporter starts as soon as it has the lock, with the few releases that arrived during
that push. Batches then alternate between many releases and a few (14, 2, 14, 2 ... for 16
clients), and every other push carries almost nothing. So an exporter that finds fewer pending
releases than the last batch carried, when that batch ended a moment ago, waits up to
``GATHER_SECONDS`` for that many. A lone release (the last batch held one, or it is long ago)
never waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC
from datetime import datetime

from server.models import StoredRelease
from server.store import Store

#: The longest an exporter waits for a batch to fill.
GATHER_SECONDS = 0.025
_POLL = 0.002
#: A last batch older than this says nothing about the load now.
_RECENT_SECONDS = 2.0


def gather(
    store: Store,
    batch: list[StoredRelease],
    deadline: float,
    fetch: Callable[[], list[StoredRelease]],
) -> list[StoredRelease]:
    """``batch``, or a fuller one fetched again with ``fetch`` after a short wait."""
    expected = _last_batch_size(store)
    if len(batch) >= expected:
        return batch
    until = min(time.monotonic() + GATHER_SECONDS, deadline)
    while time.monotonic() < until:
        time.sleep(_POLL)
        if store.count_pending() >= expected:
            break
    return fetch()


def _last_batch_size(store: Store) -> int:
    """How many releases the last push carried, if it ended a moment ago (else 1)."""
    status, _ = store.view("export")
    size, when = status.get("batch_size"), status.get("last_attempt_at")
    if not status.get("ok") or not isinstance(size, int) or not isinstance(when, str):
        return 1
    try:
        age = datetime.now(UTC) - datetime.fromisoformat(when)
    except ValueError:
        return 1
    return size if age.total_seconds() <= _RECENT_SECONDS else 1
