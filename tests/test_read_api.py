"""End to end: the read API (applications, releases, environments) and readiness."""

from __future__ import annotations

from pathlib import Path

import requests

from testkit.remote import Remote
from testkit.server import Server
from testkit.server import unique_app
from testkit.server import wait_for


def get(server: Server, path: str) -> requests.Response:
    return requests.get(server.url + path, timeout=10)


def test_applications_and_paged_releases(start_server, bare_remote: Remote) -> None:
    server = start_server(bare_remote)
    app = unique_app()
    for version in (1, 2, 3):
        assert (
            server.release(
                app,
                fields={"version": str(version), "team": "core", "display_version": f"v{version}"},
            ).status_code
            == 201
        )
    listed = get(server, "/api/applications").json()["applications"]
    assert {"name": app, "team": "core", "latest_version": 3} in listed
    page = get(server, f"/api/applications/{app}/releases?per_page=2").json()
    assert (page["total"], page["page"], page["per_page"]) == (3, 1, 2)
    assert [r["version"] for r in page["releases"]] == [3, 2]
    assert page["releases"][0]["display_version"] == "v3"
    assert page["releases"][0]["state"] == "pushed"
    assert page["releases"][0]["commit_sha"] == bare_remote.head()
    second = get(server, f"/api/applications/{app}/releases?per_page=2&page=2").json()
    assert [r["version"] for r in second["releases"]] == [1]
    assert get(server, f"/api/applications/{app}/releases?page=0").status_code == 400
    assert get(server, "/api/applications/nobody/releases").status_code == 404


def test_environments_show_deployments_queues_and_locks(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    bare_remote.push_files(
        tmp_path,
        {
            "environments/dev/config.json": '{"upstream":{"latest":true},"environmentGroup":"g"}',
            "environments/prod/config.json": "{}",
        },
    )
    server = start_server(bare_remote)
    app, locked = unique_app(), unique_app()
    assert server.release(app, {"dev": "a: 1", "prod": "a: 1"}).status_code == 201
    assert (
        requests.put(
            f"{server.url}/environments/dev/applications/{locked}/locks/hold",
            json={"message": "not now"},
            timeout=30,
        ).status_code
        == 201
    )
    assert server.release(locked, {"dev": "a: 1"}).status_code == 201
    view = get(server, "/api/environments").json()
    assert view["as_of"]
    dev = view["environments"]["dev"]
    assert dev["config"] == {
        "upstream_latest": True,
        "upstream_environment": None,
        "environment_group": "g",
    }
    assert dev["applications"][app]["version"] == 1
    assert dev["applications"][locked]["version"] is None
    assert dev["applications"][locked]["queued_version"] == 1
    assert dev["applications"][locked]["locks"][0]["message"] == "not now"
    assert view["environments"]["prod"]["applications"] == {}


def test_readyz_follows_the_last_push(start_server, bare_remote: Remote, tmp_path: Path) -> None:
    server = start_server(bare_remote, KUBERPULT_RECOVERY_INTERVAL="1")
    assert get(server, "/readyz").status_code == 200
    assert server.release(unique_app()).status_code == 201
    assert get(server, "/readyz").json()["last_export"]["ok"] is True
    hidden = tmp_path / "hidden.git"
    bare_remote.path.rename(hidden)
    assert server.release(unique_app()).status_code == 503
    not_ready = get(server, "/readyz")
    assert not_ready.status_code == 503
    assert "failed" in not_ready.json()["error"]["message"]
    assert get(server, "/healthz").status_code == 200  # alive, just not ready
    hidden.rename(bare_remote.path)
    assert wait_for(lambda: get(server, "/readyz").status_code == 200)
