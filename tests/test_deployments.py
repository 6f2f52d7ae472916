"""End to end: what a release does to the manifest repository (Kuberpult git-mode G1-G17)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from testkit.remote import Remote
from testkit.server import Server
from testkit.server import author_headers

LATEST = '{"upstream":{"latest":true}}'
MANUAL = '{"upstream":{"latest":false}}'
SHA = "cafe1cafe2cafe3cafe4cafe5cafe6cafe7cafe8"

Start = Callable[..., Server]


@pytest.fixture
def repo_with(
    start_server: Start, bare_remote: Remote, tmp_path: Path
) -> Callable[..., tuple[Server, Remote]]:
    """Seed the remote with environment configs, then start a server on it."""

    def make(environments: dict[str, str], **env: str) -> tuple[Server, Remote]:
        files = {f"environments/{name}/config.json": cfg for name, cfg in environments.items()}
        bare_remote.push_files(tmp_path, files or {"README": "empty"}, "environments")
        return start_server(bare_remote, **env), bare_remote

    return make


def release_dir(app: str, version: int) -> str:
    return f"applications/{app}/releases/{version}"


def deployed(remote: Remote, env: str, app: str) -> int | None:
    path = f"environments/{env}/applications/{app}/version"
    if not remote.exists(path):
        return None
    assert remote.mode(path) == "120000"
    target = remote.read(path).decode()
    assert target.startswith(f"../../../../applications/{app}/releases/")
    return int(target.rsplit("/", 1)[1])


def test_g1_each_release_is_deployed_and_kept(repo_with) -> None:
    server, remote = repo_with({"production": LATEST})
    for version in (1, 2, 3):
        assert (
            server.release(
                "test", {"production": f"v: {version}"}, fields={"version": str(version)}
            ).status_code
            == 201
        )
    assert all(remote.exists(release_dir("test", v)) for v in (1, 2, 3))
    assert deployed(remote, "production", "test") == 3
    assert (
        remote.read("environments/production/applications/test/manifests/manifests.yaml") == b"v: 3"
    )
    assert remote.message() == (
        'created version 3 of "test"\ndeployed version 3 of "test" to "production"'
    )


def test_deployment_files_say_who_and_when(repo_with) -> None:
    server, remote = repo_with({"production": LATEST})
    response = server.release(
        "test", {"production": b""}, headers=author_headers("Jane Doe", "jane@example.com")
    )
    assert response.status_code == 201
    base = "environments/production/applications/test"
    assert remote.read(f"{base}/deployed_by") == b"Jane Doe"
    assert remote.read(f"{base}/deployed_by_email") == b"jane@example.com"
    assert re.fullmatch(
        rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC", remote.read(f"{base}/deployed_at_utc")
    )
    # Kuberpult stores an empty manifest as one space.
    assert remote.read(f"{base}/manifests/manifests.yaml") == b" "


def test_g2_twenty_releases_are_all_kept(repo_with) -> None:
    server, remote = repo_with({"production": LATEST})
    for version in range(1, 21):
        assert server.release("test", {"production": f"v: {version}"}).status_code == 201
    assert all(remote.exists(release_dir("test", v)) for v in range(1, 21))
    assert not any("cleanup" in line for line in remote.log())


def test_g3_twenty_seven_releases_keep_the_newest_twenty(repo_with) -> None:
    server, remote = repo_with({"production": LATEST})
    for version in range(1, 28):
        assert server.release("test", {"production": f"v: {version}"}).status_code == 201
    assert not any(remote.exists(release_dir("test", v)) for v in range(1, 8))
    assert all(remote.exists(release_dir("test", v)) for v in range(8, 28))
    assert deployed(remote, "production", "test") == 27
    assert remote.message() == (
        'created version 27 of "test"\ndeployed version 27 of "test" to "production"\n'
        "removed version 7 of app test as cleanup"
    )
    # SQLite keeps the history: the removed release is still there, marked.
    receipt = requests.get(f"{server.url}/api/applications/test/releases/1", timeout=10).json()
    assert receipt["state"] == "pushed"
    assert receipt["removed_from_repo_at"]


def test_the_release_versions_limit_is_configurable(repo_with) -> None:
    server, remote = repo_with({"production": LATEST}, KUBERPULT_RELEASE_VERSIONS_LIMIT="5")
    for version in range(1, 8):
        assert server.release("test", {"production": f"v: {version}"}).status_code == 201
    assert [v for v in range(1, 8) if remote.exists(release_dir("test", v))] == [3, 4, 5, 6, 7]


def test_g4_g5_g15_metadata_is_readable_back(repo_with) -> None:
    server, remote = repo_with({"production": LATEST})
    fields = {
        "source_author": "test <test@example.com>",
        "source_commit_id": "deadbeef" * 5,
        "source_message": "stuff",
        "team": "test-team",
        "display_version": "1.3.1",
    }
    assert server.release("app1", {"production": "a: 1"}, fields=fields).status_code == 201
    base = release_dir("app1", 1)
    assert remote.read(f"{base}/source_author") == b"test <test@example.com>"
    assert remote.read(f"{base}/source_commit_id") == b"deadbeef" * 5
    assert remote.read(f"{base}/source_message") == b"stuff"
    assert remote.read(f"{base}/display_version") == b"1.3.1"
    assert remote.read("applications/app1/team") == b"test-team"
    assert re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", remote.read(f"{base}/created_at"))


def test_g6_g7_an_explicit_version_is_the_only_release(repo_with) -> None:
    server, remote = repo_with({"production": LATEST})
    response = server.release("test", {"production": "a: 1"}, fields={"version": "42"})
    assert response.status_code == 201
    releases = {f.split("/")[3] for f in remote.files() if f.startswith("applications/test/rel")}
    assert releases == {"42"}
    again = server.release("test", {"production": "a: 1"}, fields={"version": "42"})
    assert again.status_code == 200


def test_g8_g14_an_older_release_is_stored_but_never_deployed(repo_with) -> None:
    server, remote = repo_with({"production": LATEST})
    assert (
        server.release("test", {"production": "v: 42"}, fields={"version": "42"}).status_code == 201
    )
    assert (
        server.release("test", {"production": "v: 41"}, fields={"version": "41"}).status_code == 201
    )
    assert deployed(remote, "production", "test") == 42
    assert (
        remote.read(f"{release_dir('test', 41)}/environments/production/manifests.yaml") == b"v: 41"
    )
    assert remote.message() == 'created version 41 of "test"'


def test_g9_a_release_that_cleanup_would_remove_at_once_is_too_old(repo_with) -> None:
    server, remote = repo_with({})
    for version in range(21, 1, -1):
        assert (
            server.release(
                "test", {"staging": "a: 1"}, fields={"version": str(version)}
            ).status_code
            == 201
        )
    head = remote.head()
    response = server.release("test", {"staging": "a: 1"}, fields={"version": "1"})
    assert response.status_code == 400, response.text
    assert response.json()["TooOld"] == {}
    assert remote.head() == head
    missing = requests.get(f"{server.url}/api/applications/test/releases/1", timeout=10)
    assert missing.status_code == 404


def test_g10_unversioned_release_deploys_to_every_latest_environment(repo_with) -> None:
    server, remote = repo_with({"one": LATEST, "two": LATEST})
    assert server.release("test", {"one": "a: 1", "two": "a: 2"}).status_code == 201
    assert remote.read("environments/one/applications/test/manifests/manifests.yaml") == b"a: 1"
    assert remote.read("environments/two/applications/test/manifests/manifests.yaml") == b"a: 2"


def test_g11_a_locked_environment_queues_the_version(repo_with, tmp_path: Path) -> None:
    server, remote = repo_with({"one": LATEST, "two": LATEST})
    lock = requests.put(
        f"{server.url}/environments/one/locks/freeze",
        json={"message": "release freeze"},
        timeout=30,
    )
    assert lock.status_code == 201, lock.text
    assert remote.read("environments/one/locks/freeze/message") == b"release freeze"
    response = server.release("test", {"one": "a: 1", "two": "a: 2"})
    assert response.status_code == 201
    assert deployed(remote, "two", "test") == 1
    assert deployed(remote, "one", "test") is None
    queued = "environments/one/applications/test/queued_version"
    assert remote.mode(queued) == "120000"
    assert remote.read(queued) == b"../../../../applications/test/releases/1"
    assert remote.exists(f"{release_dir('test', 1)}/environments/one/manifests.yaml")
    assert 'Queued version 1 of app "test" in env "one"' in remote.message()

    unlock = requests.delete(f"{server.url}/environments/one/locks/freeze", timeout=30)
    assert unlock.status_code == 200
    assert not remote.exists("environments/one/locks/freeze")
    # Deleting the last lock does not deploy the queued version (as in Kuberpult) ...
    assert deployed(remote, "one", "test") is None
    # ... the next release does, and clears the queue.
    assert server.release("test", {"one": "a: 3", "two": "a: 3"}).status_code == 201
    assert deployed(remote, "one", "test") == 2
    assert not remote.exists(queued)


def test_g12_an_environment_without_upstream_latest_gets_nothing(repo_with) -> None:
    server, remote = repo_with({"one": LATEST, "two": MANUAL})
    assert server.release("test", {"one": "a: 1", "two": "a: 2"}).status_code == 201
    assert deployed(remote, "one", "test") == 1
    assert not remote.exists("environments/two/applications")
    assert remote.exists(f"{release_dir('test', 1)}/environments/two/manifests.yaml")


def test_g13_a_newer_release_writes_its_own_manifest(repo_with) -> None:
    server, remote = repo_with({"acceptance": LATEST})
    for version, body in (("100", "first: 1"), ("101", "second: 2")):
        assert (
            server.release("app1", {"acceptance": body}, fields={"version": version}).status_code
            == 201
        )
    assert (
        remote.read(f"{release_dir('app1', 101)}/environments/acceptance/manifests.yaml")
        == b"second: 2"
    )
    assert deployed(remote, "acceptance", "app1") == 101


def test_app_and_team_locks_block_their_application_only(repo_with) -> None:
    server, remote = repo_with({"one": LATEST})
    url = server.url
    app_lock = requests.put(
        f"{url}/environments/one/applications/blocked/locks/l1",
        json={"message": "broken"},
        timeout=30,
    )
    assert app_lock.status_code == 201
    team_lock = requests.put(
        f"{url}/api/environments/one/lock/team/payments/l2",
        json={"message": "team freeze"},
        timeout=30,
    )
    assert team_lock.status_code == 201
    assert remote.read("environments/one/teams/payments/locks/l2/message") == b"team freeze"
    assert server.release("blocked", {"one": "a: 1"}).status_code == 201
    assert server.release("paid", {"one": "a: 1"}, fields={"team": "payments"}).status_code == 201
    assert server.release("free", {"one": "a: 1"}, fields={"team": "other"}).status_code == 201
    assert deployed(remote, "one", "blocked") is None
    assert deployed(remote, "one", "paid") is None
    assert deployed(remote, "one", "free") == 1
    # Removing the team lock lets the team's next release through.
    assert (
        requests.delete(f"{url}/api/environments/one/lock/team/payments/l2", timeout=30).status_code
        == 200
    )
    assert server.release("paid", {"one": "a: 2"}).status_code == 201
    assert deployed(remote, "one", "paid") == 2


def test_lock_files_and_idempotency(repo_with) -> None:
    server, remote = repo_with({"one": LATEST})
    url = f"{server.url}/environments/one/locks/maintenance"
    headers = author_headers("Ops Person", "ops@example.com")
    body = {
        "message": "db upgrade",
        "ciLink": "https://ci.example.com/1",
        "suggestedLifeTime": "2h",
    }
    assert requests.put(url, json=body, headers=headers, timeout=30).status_code == 201
    base = "environments/one/locks/maintenance"
    assert remote.read(f"{base}/created_by_name") == b"Ops Person"
    assert remote.read(f"{base}/created_by_email") == b"ops@example.com"
    assert remote.read(f"{base}/ci_link") == b"https://ci.example.com/1"
    assert remote.exists(f"{base}/created_at")
    assert remote.message() == 'Created lock "maintenance" on environment "one"'
    head = remote.head()
    assert requests.put(url, json=body, timeout=30).status_code == 200
    assert remote.head() == head
    assert requests.delete(url, timeout=30).json() == {"commit_sha": remote.head(), "deleted": True}
    assert requests.delete(url, timeout=30).json()["deleted"] is False


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/environments/nowhere/locks/x", {"message": "m"}, 404),
        ("/environments/Bad/locks/x", {"message": "m"}, 400),
        ("/environments/one/locks/.hidden", {"message": "m"}, 400),
        ("/environments/one/locks/x", {"message": 5}, 400),
        ("/environments/one/locks/x", {"message": "m", "suggestedLifeTime": "forever"}, 400),
        ("/environments/one/locks/x", {"message": "m", "colour": "red"}, 400),
        ("/environments/one/applications/Bad/locks/x", {"message": "m"}, 400),
        ("/api/environments/one/lock/team/t_t/x", {"message": "m"}, 400),
    ],
)
def test_bad_lock_requests_change_nothing(repo_with, path: str, body: object, status: int) -> None:
    server, remote = repo_with({"one": LATEST})
    head = remote.head()
    response = requests.put(server.url + path, json=body, timeout=30)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]
    assert remote.head() == head


def test_locks_need_the_api_gate(repo_with) -> None:
    server, remote = repo_with({"one": LATEST}, KUBERPULT_API_ENABLE_DESPITE_NO_AUTH="false")
    response = requests.put(
        f"{server.url}/environments/one/locks/x", json={"message": "m"}, timeout=30
    )
    assert response.status_code == 401


def test_an_unparsable_environment_config_is_a_clear_error(repo_with) -> None:
    server, remote = repo_with({"broken": "{not json"})
    head = remote.head()
    response = server.release("test", {"broken": "a: 1"})
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "invalid_repository_file"
    assert "environments/broken/config.json" in response.json()["error"]["message"]
    assert remote.head() == head


def test_g16_g17_commit_data_records_the_release(repo_with) -> None:
    server, remote = repo_with(
        {"acceptance": LATEST, "production": MANUAL}, KUBERPULT_GIT_WRITE_COMMIT_DATA="true"
    )
    response = server.release(
        "app",
        {"acceptance": "a: 1", "production": "a: 1"},
        fields={"source_commit_id": SHA, "source_message": "the change"},
    )
    assert response.status_code == 201
    base = f"commits/ca/{SHA[2:]}"
    assert remote.exists(f"{base}/.empty")
    assert remote.read(f"{base}/source_message") == b"the change"
    assert remote.exists(f"{base}/applications/app/.gitkeep")
    events = events_by_type(remote, base)
    new_release = events["new-release"][0]
    assert remote.exists(f"{base}/events/{new_release}/environments/acceptance/.gitkeep")
    assert remote.exists(f"{base}/events/{new_release}/environments/production/.gitkeep")
    deployment = events["deployment"][0]
    assert remote.read(f"{base}/events/{deployment}/application") == b"app"
    assert remote.read(f"{base}/events/{deployment}/environment") == b"acceptance"
    # Time-based UUIDs, ordered by when the event happened.
    assert new_release[14] == "1" and deployment[14] == "1"


def events_by_type(remote: Remote, base: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in remote.files():
        match = re.fullmatch(re.escape(base) + r"/events/([^/]+)/eventType", path)
        if match:
            found.setdefault(remote.read(path).decode(), []).append(match.group(1))
    return found


def test_commit_data_links_previous_and_next_and_records_replacement(repo_with) -> None:
    server, remote = repo_with({"acceptance": LATEST}, KUBERPULT_GIT_WRITE_COMMIT_DATA="true")
    first, second = "a" * 40, "b" * 40
    assert (
        server.release(
            "app", {"acceptance": "v: 1"}, fields={"source_commit_id": first}
        ).status_code
        == 201
    )
    assert (
        server.release(
            "app",
            {"acceptance": "v: 2"},
            fields={"source_commit_id": second, "previous_commit_id": first},
        ).status_code
        == 201
    )
    assert remote.read(f"commits/bb/{second[2:]}/previousCommit") == first.encode()
    assert remote.read(f"commits/aa/{first[2:]}/nextCommit") == second.encode()
    replaced = events_by_type(remote, f"commits/aa/{first[2:]}")["replaced-by"][0]
    base = f"commits/aa/{first[2:]}/events/{replaced}"
    assert remote.read(f"{base}/commit") == second.encode()
    assert remote.read(f"{base}/environment") == b"acceptance"


def test_commit_data_records_a_deployment_a_lock_prevented(repo_with) -> None:
    server, remote = repo_with({"acceptance": LATEST}, KUBERPULT_GIT_WRITE_COMMIT_DATA="true")
    assert (
        requests.put(
            f"{server.url}/environments/acceptance/locks/stop",
            json={"message": "stop it"},
            timeout=30,
        ).status_code
        == 201
    )
    assert (
        server.release(
            "app", {"acceptance": "v: 1"}, fields={"source_commit_id": "c" * 40}
        ).status_code
        == 201
    )
    base = f"commits/cc/{'c' * 38}"
    prevented = events_by_type(remote, base)["lock-prevented-deployment"][0]
    assert remote.read(f"{base}/events/{prevented}/lock_message") == b"stop it"
    assert remote.read(f"{base}/events/{prevented}/lock_type") == b"environment"


def test_create_environment_command_writes_and_pushes(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    import subprocess

    from testkit.server import SERVER_BIN

    env = {
        "PATH": "/usr/bin:/bin",
        "KUBERPULT_DATA_DIR": str(tmp_path / "data"),
        "KUBERPULT_GIT_URL": bare_remote.url,
    }
    result = subprocess.run(
        [
            str(SERVER_BIN),
            "create-environment",
            "production",
            "--upstream",
            "staging",
            "--group",
            "prod",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(bare_remote.read("environments/production/config.json")) == {
        "upstream": {"environment": "staging"},
        "environmentGroup": "prod",
    }
    assert bare_remote.read("environments/production/config.json").startswith(b"{\n  ")
    bad = subprocess.run(
        [str(SERVER_BIN), "create-environment", "../etc"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "environment name" in bad.stderr
    # The server works on the same data dir afterwards.
    server = start_server(bare_remote)
    assert server.release("app", {"production": "a: 1"}).status_code == 201
