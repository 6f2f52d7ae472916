"""After the release, end to end on a real server and remote: release trains (environment and
group), deploys of one version, group locks, deleting an environment, the commit read
endpoints, and the Argo CD files they keep up to date."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from testkit.remote import Remote
from testkit.remote import make_bare_remote
from testkit.server import Server
from testkit.server import author_headers
from testkit.server import unique_app
from tests.argocd_crds import check_document
from tests.security.attack import nothing_moves

CONFIGS = {
    "dev": {
        "upstream": {"latest": True},
        "argocd": {"destination": {"server": "https://kubernetes.default.svc", "namespace": "a"}},
    },
    "staging": {"upstream": {"environment": "dev"}, "argocd": {}},
    "prod-de": {"upstream": {"environment": "staging"}, "environmentGroup": "prod"},
    "prod-us": {"upstream": {"environment": "staging"}, "environmentGroup": "prod"},
    "solo": {},
}
SHA = "0123456789abcdef0123456789abcdef01234567"
JANE = author_headers("Jane", "jane@example.com")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Remote, Path]]:
    base = tmp_path_factory.mktemp("promotion")
    remote = make_bare_remote(base / "remote.git")
    files = {f"environments/{n}/config.json": json.dumps(c) for n, c in CONFIGS.items()}
    remote.push_files(base, files, "environments")
    server = Server(
        base / "data",
        {"KUBERPULT_API_ENABLE_DESPITE_NO_AUTH": "true", "KUBERPULT_GIT_URL": remote.url},
    ).start()
    yield server, remote, base
    server.stop()


def release(server: Server, app: str, version: int, team: str, envs: tuple[str, ...]) -> None:
    manifests = {env: f"app: {app}\nversion: {version}\n" for env in envs}
    fields = {"version": str(version), "team": team, "source_commit_id": SHA}
    fields["source_message"] = f"build {version}"
    fields["source_author"] = "Jane <jane@example.com>"
    answer = server.release(app, manifests, fields=fields)
    assert answer.status_code == 201, answer.text


def deployed(remote: Remote, env: str, app: str) -> int | None:
    path = f"environments/{env}/applications/{app}/version"
    return int(remote.read(path).decode().rsplit("/", 1)[1]) if remote.exists(path) else None


def train(
    server: Server, target: str, team: str | None = None, **kwargs: object
) -> requests.Response:
    kind = "environment-groups" if kwargs.pop("group", False) else "environments"
    query = f"?team={team}" if team else ""
    return requests.put(
        f"{server.url}/api/{kind}/{target}/releasetrain{query}",
        headers=JANE,
        timeout=60,
        **kwargs,  # type: ignore[arg-type]
    )


ALL = ("dev", "staging", "prod-de", "prod-us", "solo")


def test_a_train_moves_what_upstream_runs_in_one_commit_with_kuberpults_message(setup) -> None:
    server, remote, _ = setup
    team = unique_app("team")[:20]
    echo, backend, frontend = (unique_app(n)[:30] for n in ("echo", "backend", "frontend"))
    for app in (echo, backend, frontend):
        release(server, app, 1, team, ALL)
    # staging: backend already at 1, frontend locked, echo moves 1 -> 2.
    assert train(server, "staging", team).status_code == 200
    release(server, echo, 2, team, ALL)
    lock = requests.put(
        f"{server.url}/environments/staging/applications/{frontend}/locks/hold",
        json={"message": "investigating"},
        timeout=60,
    )
    assert lock.status_code == 201
    release(server, frontend, 2, team, ALL)
    head = remote.head()
    answer = train(server, "staging", team)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["target"] == "staging" and body["team"] == team
    assert body["deployed"] == [{"environment": "staging", "application": echo, "version": 2}]
    assert [s["application"] for s in body["skipped"]] == [backend, frontend]
    assert deployed(remote, "staging", echo) == 2
    assert deployed(remote, "staging", frontend) == 1
    assert remote.log("%H")[1] == head  # one commit
    assert body["commit_sha"] == remote.head()
    assert remote.message() == (
        "Release Train to environment/environment group 'staging':\n\n"
        "Release Train to 'staging' environment:\n\n"
        f"The release train deployed 1 services from 'dev' to 'staging' for team '{team}'\n"
        f'deployed version 2 of "{echo}" to "staging"\n'
        "Skipped services\n"
        f'skipping "{backend}" because it is already in the version 1\n\n'
        f'skipping application "{frontend}" in environment "staging" due to application lock'
    )
    # Argo CD's file for staging now has echo's Application, checked against the CRDs.
    documents = list(yaml.safe_load_all(remote.read("argocd/v1alpha1/staging.yaml")))
    names = [d["metadata"]["name"] for d in documents]
    assert f"staging-{echo}" in names and names[0] == "staging"
    for document in documents:
        check_document(document)
    application = next(d for d in documents if d["metadata"]["name"] == f"staging-{echo}")
    assert application["metadata"]["labels"] == {"com.freiheit.kuberpult/team": team}
    assert application["spec"]["source"]["repoURL"] == remote.url


def test_a_group_train_moves_every_member_in_one_commit(setup) -> None:
    server, remote, _ = setup
    team = unique_app("team")[:20]
    app = unique_app("svc")[:30]
    release(server, app, 1, team, ALL)
    assert train(server, "staging", team).status_code == 200
    head = remote.head()
    answer = train(server, "prod", team, group=True)
    assert answer.status_code == 200, answer.text
    assert {(d["environment"], d["version"]) for d in answer.json()["deployed"]} == {
        ("prod-de", 1),
        ("prod-us", 1),
    }
    assert remote.log("%H")[1] == head
    assert deployed(remote, "prod-de", app) == deployed(remote, "prod-us", app) == 1
    message = remote.message()
    assert message.startswith("Release Train to environment/environment group 'prod':\n\n")
    assert message.index("'prod-de' environment") < message.index("'prod-us' environment")


def test_a_locked_environment_or_one_without_upstream_is_skipped_with_the_reason(setup) -> None:
    server, remote, _ = setup
    team = unique_app("team")[:20]
    app = unique_app("svc")[:30]
    release(server, app, 1, team, ALL)
    answer = train(server, "solo", team)
    assert answer.status_code == 200
    assert answer.json()["skipped"][0]["reason"] == (
        "Environment '\"solo\"' does not have upstream configured - skipping."
    )
    assert answer.json()["commit_sha"] is None
    lock = requests.put(
        f"{server.url}/environments/staging/locks/{team}", json={"message": "x"}, timeout=60
    )
    assert lock.status_code == 201
    try:
        with nothing_moves(server, remote):
            answer = train(server, "staging", team)
        assert answer.json()["skipped"] == [
            {
                "environment": "staging",
                "application": None,
                "reason": "Target Environment 'staging' is locked - skipping.",
            }
        ]
    finally:
        requests.delete(f"{server.url}/environments/staging/locks/{team}", timeout=60)


def test_a_train_into_an_upstream_latest_environment_deploys_the_newest_release(setup) -> None:
    # Kuberpult v12 deploys nothing here; v11 (and we) deploy each application's newest.
    server, remote, _ = setup
    team = unique_app("team")[:20]
    app = unique_app("svc")[:30]
    release(server, app, 1, team, ("dev",))
    lock = f"{server.url}/environments/dev/applications/{app}/locks/hold"
    assert requests.put(lock, json={"message": "x"}, timeout=60).status_code == 201
    release(server, app, 2, team, ("dev",))
    assert deployed(remote, "dev", app) == 1  # queued behind the lock
    assert requests.delete(lock, timeout=60).status_code == 200
    answer = train(server, "dev", team)
    assert answer.status_code == 200, answer.text
    assert answer.json()["deployed"] == [{"environment": "dev", "application": app, "version": 2}]
    assert "from 'latest' to 'dev'" in remote.message()
    assert deployed(remote, "dev", app) == 2


def test_a_deploy_of_one_version_and_its_lock_behaviors(setup) -> None:
    server, remote, _ = setup
    team = unique_app("team")[:20]
    app = unique_app("svc")[:30]
    for version in (1, 2):
        release(server, app, version, team, ALL)
    url = f"{server.url}/api/environments/staging/applications/{app}/deployment"
    answer = requests.put(url, json={"version": 1}, headers=JANE, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["queued"] is False
    assert deployed(remote, "staging", app) == 1
    assert remote.message() == f'deployed version 1 of "{app}" to "staging"'
    assert remote.read(f"environments/staging/applications/{app}/deployed_by") == b"Jane"
    lock = f"{server.url}/environments/staging/applications/{app}/locks/freeze"
    assert requests.put(lock, json={"message": "freeze"}, timeout=60).status_code == 201
    with nothing_moves(server, remote):
        refused = requests.put(url, json={"version": 2, "lockBehavior": "fail"}, timeout=60)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "locked"
    queued = requests.put(url, json={"version": 2}, timeout=60)
    assert queued.status_code == 200 and queued.json()["queued"] is True
    assert deployed(remote, "staging", app) == 1
    assert remote.exists(f"environments/staging/applications/{app}/queued_version")
    forced = requests.put(url, json={"version": 2, "lockBehavior": "ignore"}, timeout=60)
    assert forced.status_code == 200 and deployed(remote, "staging", app) == 2
    assert not remote.exists(f"environments/staging/applications/{app}/queued_version")
    requests.delete(lock, timeout=60)


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/api/environments/staging/applications/{app}/deployment", {"version": 0}, 400, "version"),
        (
            "/api/environments/staging/applications/{app}/deployment",
            {"version": "1"},
            400,
            "version",
        ),
        (
            "/api/environments/staging/applications/{app}/deployment",
            {"version": 1, "lockBehavior": "x"},
            400,
            "lockBehavior",
        ),
        (
            "/api/environments/staging/applications/{app}/deployment",
            {"version": 1, "force": True},
            400,
            "force",
        ),
        ("/api/environments/staging/applications/{app}/deployment", {"version": 9}, 404, None),
        ("/api/environments/nowhere/applications/{app}/deployment", {"version": 1}, 404, None),
        ("/api/environments/Staging/releasetrain", None, 400, "environment"),
        ("/api/environments/nowhere/releasetrain", None, 404, None),
        ("/api/environment-groups/nogroup/releasetrain", None, 404, None),
        ("/api/environments/staging/releasetrain?team=Bad_Team", None, 400, "team"),
        (
            "/api/environments/staging/releasetrain",
            {"ciLink": "javascript:alert(1)"},
            400,
            "ci_link",
        ),
        ("/api/environments/staging/releasetrain", ["ciLink"], 400, "body"),
        ("/environment-groups/nogroup/locks/l1", {"message": "x"}, 404, None),
        ("/api/environments/staging/releasetrain", {"ciLink": "http://[::1"}, 400, "ci_link"),
        ("/api/environments/staging/releasetrain", {"ciLink": "http://a/\x1b[2J"}, 400, "ci_link"),
        ("/environments/staging/locks/l2", {"message": "x", "ciLink": "http://[x"}, 400, "ci_link"),
        ("/api/environments/staging/releasetrain?team=" + "t" * 21, None, 400, "team"),
        ("/environment-groups/prod/locks/-x", {"message": "x"}, 400, "lockId"),
    ],
)
def test_bad_requests_name_the_problem_and_change_nothing(setup, path, body, status, field) -> None:
    server, remote, _ = setup
    app = unique_app("svc")[:30]
    release(server, app, 1, "t", ALL)
    with nothing_moves(server, remote):
        answer = requests.put(server.url + path.format(app=app), json=body, timeout=60)
    assert answer.status_code == status, answer.text
    if field:
        assert answer.json()["error"]["field"] == field


def test_a_group_lock_is_one_lock_per_member_in_one_commit(setup) -> None:
    server, remote, _ = setup
    url = f"{server.url}/environment-groups/prod/locks/maintenance"
    answer = requests.put(url, json={"message": "db migration"}, headers=JANE, timeout=60)
    assert answer.status_code == 201, answer.text
    assert remote.message() == (
        "Creating locks 'maintenance' for environment group 'prod':\n"
        'Created lock "maintenance" on environment "prod-de"\n'
        'Created lock "maintenance" on environment "prod-us"'
    )
    for env in ("prod-de", "prod-us"):
        assert remote.read(f"environments/{env}/locks/maintenance/message") == b"db migration"
    assert requests.delete(url, timeout=60).status_code == 200
    assert not remote.exists("environments/prod-de/locks/maintenance")
    assert not remote.exists("environments/prod-us/locks/maintenance")


def test_an_environment_is_deleted_only_when_nothing_depends_on_it(setup) -> None:
    server, remote, base = setup
    remote.push_files(
        base,
        {"environments/scratch/config.json": '{"upstream": {"latest": true}, "argocd": {}}'},
        "scratch",
    )
    app = unique_app("svc")[:30]
    release(server, app, 1, "t", ("scratch",))
    with nothing_moves(server, remote):
        refused = requests.put(
            f"{server.url}/api/environments/scratch/applications/{app}/deployment",
            json={"version": 1},
            timeout=60,
        )
        in_use = requests.delete(f"{server.url}/api/environments/dev", timeout=60)
    assert refused.status_code == 200  # already deployed: nothing to do
    assert in_use.status_code == 409 and "deployed there" in in_use.json()["error"]["message"]
    remote.push_files(base, {f"environments/scratch/applications/{app}": None}, "undeploy by hand")
    assert remote.exists("argocd/v1alpha1/scratch.yaml")
    answer = requests.delete(f"{server.url}/api/environments/scratch", timeout=60)
    assert answer.status_code == 200, answer.text
    assert not remote.exists("environments/scratch/config.json")
    assert not remote.exists("argocd/v1alpha1/scratch.yaml")
    assert remote.message() == "Successfully deleted environment 'scratch'"


def test_commit_reads_say_where_a_commit_runs(setup) -> None:
    server, remote, _ = setup
    team = unique_app("team")[:20]
    app = unique_app("svc")[:30]
    commit = unique_app("")[-10:].ljust(40, "a")
    manifests = {"dev": "x: 1\n", "staging": "x: 1\n"}
    fields = {"version": "1", "team": team, "source_commit_id": commit, "source_message": "fix it"}
    fields["source_author"] = "Jane <jane@example.com>"
    assert server.release(app, manifests, fields=fields).status_code == 201
    status = requests.get(f"{server.url}/api/commit-deployments/{commit}", timeout=60)
    assert status.status_code == 200, status.text
    envs = status.json()["deploymentStatus"][app]["deploymentStatus"]
    assert (envs["dev"], envs["staging"], envs["solo"]) == ("DEPLOYED", "PENDING", "UNKNOWN")
    info = requests.get(f"{server.url}/api/environments/dev/applications/{app}/commit", timeout=60)
    assert info.json() == {
        "author": "Jane <jane@example.com>",
        "commit_id": commit,
        "commit_message": "fix it",
    }
    nothing = requests.get(
        f"{server.url}/api/environments/staging/applications/{app}/commit", timeout=60
    )
    assert nothing.status_code == 200 and nothing.json() == {}
    unknown = requests.get(f"{server.url}/api/commit-deployments/{'f' * 40}", timeout=60)
    assert unknown.status_code == 404
    bad = requests.get(f"{server.url}/api/commit-deployments/nothex", timeout=60)
    assert bad.status_code == 400


def test_the_overview_page_lists_recent_trains_and_deploys(setup) -> None:
    server, remote, _ = setup
    team = unique_app("team")[:20]
    app = unique_app("svc")[:30]
    release(server, app, 1, team, ALL)
    assert train(server, "staging", team).status_code == 200
    page = requests.get(server.url + "/", timeout=60).text
    section = page[page.index("Recent promotions") :]
    assert f"release train into staging (team {team})" in section
    assert f"{app} 1 &rarr; staging" in section
    assert remote.head()[:12] in section


@pytest.mark.parametrize(
    "path",
    [
        "/api/environments/staging/releasetrain",
        "/api/environments/staging/applications/shop/deployment",
        "/environment-groups/prod/locks/deep",
        "/environments/staging/locks/deep",
    ],
)
def test_a_body_nested_too_deeply_is_a_400_not_a_crash(setup, path: str) -> None:
    server, remote, _ = setup
    body = "[" * 100_000 + "]" * 100_000
    with nothing_moves(server, remote):
        answer = requests.put(
            server.url + path, data=body, headers={"Content-Type": "application/json"}, timeout=60
        )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == "body"


def test_a_foreign_config_of_the_wrong_type_refuses_edits_cleanly(setup) -> None:
    server, remote, base = setup
    remote.push_files(base, {"environments/qa/config.json": '{"argocd": []}'}, "broken")
    try:
        head = remote.head()
        answer = train(server, "staging")
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"]["code"] == "invalid_repository_file"
        assert "environments/qa/config.json" in answer.json()["error"]["message"]
        assert remote.head() == head
    finally:
        remote.push_files(base, {"environments/qa/config.json": None}, "repaired")


def test_an_environment_with_a_queued_version_is_not_deleted(setup) -> None:
    server, remote, base = setup
    remote.push_files(base, {"environments/queue/config.json": '{"upstream":{"latest":true}}'})
    app = unique_app("svc")[:30]
    lock = f"{server.url}/environments/queue/locks/hold"
    assert requests.put(lock, json={"message": "x"}, timeout=60).status_code == 201
    release(server, app, 1, "t", ("queue",))
    assert requests.delete(lock, timeout=60).status_code == 200
    with nothing_moves(server, remote):
        answer = requests.delete(f"{server.url}/api/environments/queue", timeout=60)
    assert answer.status_code == 409 and "queued" in answer.json()["error"]["message"]


def test_the_deployment_commit_read_checks_its_names(setup) -> None:
    server, _, _ = setup
    answer = requests.get(
        f"{server.url}/api/environments/Bad_Env/applications/x/commit", timeout=60
    )
    assert answer.status_code == 400
