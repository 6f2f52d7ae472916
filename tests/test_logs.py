"""JSON logs: one line per request with its id, one per push, and never a secret."""

from __future__ import annotations

import json

from tests.conftest import Remote
from tests.conftest import author_headers
from tests.conftest import unique_app
from tests.test_remote import wait_for


def json_lines(text: str) -> list[dict[str, object]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_requests_and_pushes_are_json_lines(start_server, bare_remote: Remote) -> None:
    server = start_server(bare_remote)
    secret = "Bearer super-secret-token-value"
    response = server.release(
        unique_app(),
        headers={
            "X-Request-Id": "ci-run-42",
            "Authorization": secret,
            **author_headers("Jane", "jane@example.com"),
        },
    )
    assert response.status_code == 201
    assert response.headers["X-Request-Id"] == "ci-run-42"
    generated = server.release(unique_app(), headers={"X-Request-Id": "bad id with spaces"})
    assert len(generated.headers["X-Request-Id"]) == 32

    def logged() -> list[dict[str, object]]:
        return json_lines(server.log())

    assert wait_for(lambda: any(e.get("request_id") == "ci-run-42" for e in logged()))
    request = next(e for e in logged() if e.get("request_id") == "ci-run-42")
    assert request["event"] == "request"
    assert request["path"] == "/api/release"
    assert request["status"] == 201
    assert isinstance(request["duration_ms"], float)
    pushes = [e for e in logged() if e.get("event") == "push"]
    assert pushes and all(isinstance(e["batch_size"], int) for e in pushes)
    assert any(e["ok"] is True for e in pushes)
    assert "super-secret-token-value" not in server.log()
