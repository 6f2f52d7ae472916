"""Prometheus metrics, correct across gunicorn workers (prometheus-client multiprocess mode).

``kuberpult-server`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before the
workers start; each worker then writes its samples to files there and ``/metrics`` sums them.
Without it (tests with one process) the default registry is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Histogram
from prometheus_client import generate_latest
from prometheus_client import multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REQUESTS = Counter(
    "kuberpult_http_requests_total",
    "HTTP requests by endpoint and status",
    ["endpoint", "method", "status"],
)
RELEASES = Counter("kuberpult_releases_created_total", "Releases created (201)")
PUSH_SECONDS = Histogram(
    "kuberpult_push_duration_seconds",
    "Time to export one batch: commits and push",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
WEBHOOKS = Counter(
    "kuberpult_argocd_webhooks_total",
    "Argo CD webhooks after pushes, by outcome: sent, refused (4xx), failed (after retries)",
    ["outcome"],
)
BATCH_SIZE = Histogram(
    "kuberpult_push_batch_size",
    "Releases per push",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)


class _Pending(Collector):
    """The number of releases waiting for a push, read from SQLite at scrape time."""

    def __init__(self, count: Callable[[], int]) -> None:
        self.count = count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "kuberpult_pending_releases", "Releases stored but not yet pushed", value=self.count()
        )


def render(pending: Callable[[], int]) -> tuple[bytes, str]:
    """The exposition text of every worker's metrics plus the queue depth."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = CollectorRegistry()
        for collector in (REQUESTS, RELEASES, PUSH_SECONDS, BATCH_SIZE):
            registry.register(collector)
    registry.register(_Pending(pending))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """Tell the multiprocess collector that a worker is gone (gunicorn's child_exit)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
