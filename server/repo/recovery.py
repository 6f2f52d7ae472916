"""Each worker's background round: push whatever is pending (a crash, an unreachable remote,
a request that gave up waiting), and let git tidy the clone when it has many packs."""

from __future__ import annotations

import logging
import threading
import time

from server.config import Config
from server.repo.exporter import Exporter
from server.store import Store
from server.store import open_store

log = logging.getLogger(__name__)

# How often a worker lets git consolidate the packs that batches leave behind (one each), and
# how many packs make it due sooner: lookups slow down with every pack.
HOUSEKEEPING_INTERVAL = 600.0
HOUSEKEEPING_PACKS = 50


def start_recovery(config: Config, exporter: Exporter) -> None:
    """Push whatever is pending, now and every ``recovery_interval`` seconds (one per worker;
    the repo lock keeps them from working at once)."""

    def loop() -> None:
        tidied = time.monotonic()
        # This connection stays open for the worker's life. Besides serving the loop, it keeps
        # SQLite from checkpointing and deleting the WAL each time a request closes the last
        # other connection (which costs an fsync per request).
        store: Store | None = None
        while True:
            try:
                store = store or open_store(config)
                if store.count_pending():
                    # Nobody waits for this round: it may take as long as a push may.
                    deadline = time.monotonic() + config.git_push_timeout
                    report = exporter.export_until(store, None, deadline)
                    if report.error:
                        log.warning("pending releases not pushed yet: %s", report.error)
                due = time.monotonic() - tidied > HOUSEKEEPING_INTERVAL
                if due or exporter.pack_count() >= HOUSEKEEPING_PACKS:
                    exporter.housekeeping()
                    tidied = time.monotonic()
            except Exception:
                log.exception("recovery round failed")
                if store is not None:
                    store.close()
                store = None
            time.sleep(config.recovery_interval)

    threading.Thread(target=loop, name="kuberpult-recovery", daemon=True).start()
