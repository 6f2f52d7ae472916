"""JSON logs: one line per request with its id, one per push, and never a secret."""

from __future__ import annotations

import json
from pathlib import Path

from testkit.remote import Remote
from testkit.server import author_headers
from testkit.server import unique_app
from testkit.server import wait_for
from tests.oidc_provider import Provider


def json_lines(text: str) -> list[dict[str, object]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_requests_and_pushes_are_json_lines(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    # The secret must be where the server reads it: a real token of a configured issuer,
    # verified, mapped to a role and used as the author; then it must still not be logged.
    dex = Provider("/dex")
    try:
        (tmp_path / "policy.csv").write_text(
            "p, role:ci, CreateRelease, *:*, *, allow\n"
            "p, role:ci, DeployRelease, *:*, *, allow\ng, ci, role:ci\n"
        )
        server = start_server(
            bare_remote,
            KUBERPULT_DEX_ENABLED="true",
            KUBERPULT_DEX_ISSUER_URL=dex.issuer,
            KUBERPULT_DEX_CLIENT_ID="kuberpult",
            KUBERPULT_DEX_RBAC_POLICY_PATH=str(tmp_path / "policy.csv"),
        )
        secret = dex.token(groups="ci", email="ci@example.com", name="CI")
        rejected = dex.token(audience="someone-else", groups="ci")
        _release_and_check_logs(server, secret, rejected)
    finally:
        dex.stop()


def _release_and_check_logs(server, secret: str, rejected: str) -> None:
    assert (
        server.release(unique_app(), headers={"Authorization": f"Bearer {rejected}"}).status_code
        == 401
    )
    response = server.release(
        unique_app(),
        headers={
            "X-Request-Id": "ci-run-42",
            "Authorization": f"Bearer {secret}",
            **author_headers("Jane", "jane@example.com"),
        },
    )
    assert response.status_code == 201
    assert response.headers["X-Request-Id"] == "ci-run-42"
    generated = server.release(
        unique_app(),
        headers={"X-Request-Id": "bad id with spaces", "Authorization": f"Bearer {secret}"},
    )
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
    log = server.log()
    for token in (secret, rejected):
        for piece in token.split("."):  # not even the header, claims or signature alone
            assert piece not in log
