"""/metrics: Prometheus text, summed over every gunicorn worker."""

from __future__ import annotations

import re

import requests

from testkit.remote import Remote
from testkit.server import unique_app


def sample(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    pattern = re.escape(name) + (r"\{" + labels + r"\}" if labels else r"(\{[^}]*\})?")
    total = 0.0
    for match in re.finditer(r"^" + pattern + r" ([0-9.e+]+)$", text, re.M):
        total += float(match.group(match.lastindex or 1))
    return total


def test_metrics_add_up_across_workers(start_server, bare_remote: Remote) -> None:
    server = start_server(bare_remote, workers=2)
    for _ in range(6):
        assert server.release(unique_app()).status_code == 201
    assert server.release("Bad").status_code == 400
    # Scrape repeatedly: whichever worker answers, the totals are the same.
    scrapes = [requests.get(server.url + "/metrics", timeout=10).text for _ in range(4)]
    for text in scrapes:
        assert sample(text, "kuberpult_releases_created_total") == 6
        assert (
            sample(
                text,
                "kuberpult_http_requests_total",
                'endpoint="api.api_release",method="POST",status="201"',
            )
            == 6
        )
        assert (
            sample(
                text,
                "kuberpult_http_requests_total",
                'endpoint="api.api_release",method="POST",status="400"',
            )
            == 1
        )
        assert sample(text, "kuberpult_push_duration_seconds_count", 'outcome="ok"') >= 1
        assert sample(text, "kuberpult_push_batch_size_sum") >= 6
        assert "kuberpult_pending_releases 0.0" in text
