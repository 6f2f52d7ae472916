"""Who may promote: release trains, deploys, group locks and deleting an environment, with
real Dex and GitHub tokens. Each refusal has a twin that is let through, and every refusal
leaves the remote and the store as they were."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from testkit.remote import Remote
from testkit.remote import make_bare_remote
from testkit.server import Server
from tests.oidc_provider import Provider
from tests.security.attack import DEV
from tests.security.attack import GITHUB_AUDIENCE
from tests.security.attack import POLICY
from tests.security.attack import bearer
from tests.security.attack import dex_settings
from tests.security.attack import github_settings
from tests.security.attack import nothing_moves

PROMOTERS = POLICY + (
    "p, role:developer, DeleteLock, dev-group:development, *, allow\n"
    "p, role:promoter, DeployReleaseTrain, prod-group:production, *, allow\n"
    "p, role:promoter, DeployRelease, prod-group:production, *, allow\n"
    "g, promoters, role:developer\ng, promoters, role:promoter\n"
)
PROMOTER = {"email": "ops@example.com", "name": "Op Erator", "groups": "promoters"}
CONFIGS = {
    "environments/development/config.json": (
        '{"upstream":{"latest":true},"environmentGroup":"dev-group"}'
    ),
    "environments/production/config.json": (
        '{"upstream":{"environment":"development"},"environmentGroup":"prod-group"}'
    ),
}


def deployed(remote: Remote, env: str, app: str) -> int | None:
    path = f"environments/{env}/applications/{app}/version"
    return int(remote.read(path).decode().rsplit("/", 1)[1]) if remote.exists(path) else None


@pytest.fixture(scope="module")
def dex_server(
    tmp_path_factory: pytest.TempPathFactory, dex: Provider
) -> Iterator[tuple[Server, Remote, Path]]:
    base = tmp_path_factory.mktemp("dex-promotion")
    remote = make_bare_remote(base / "remote.git")
    remote.push_files(base, CONFIGS)
    settings = {"KUBERPULT_GIT_URL": remote.url, **dex_settings(base, dex, PROMOTERS)}
    server = Server(base / "data", settings).start()
    for version in (1, 2):
        answer = server.release(
            "shop",
            {"development": f"v: {version}", "production": f"v: {version}"},
            fields={"version": str(version)},
            headers=bearer(dex.token(**DEV)),
        )
        assert answer.status_code == 201, answer.text
    yield server, remote, base
    server.stop()


def test_a_release_train_needs_deploy_release_train_on_each_environment(
    dex_server: tuple[Server, Remote, Path], dex: Provider
) -> None:
    server, remote, _ = dex_server
    url = f"{server.url}/api/environments/production/releasetrain"
    with nothing_moves(server, remote):
        anonymous = requests.put(url, timeout=60)
        developer = requests.put(url, headers=bearer(dex.token(**DEV)), timeout=60)
    assert anonymous.status_code == 401
    assert developer.status_code == 403
    assert "DeployReleaseTrain" in developer.json()["error"]["message"]
    assert "prod-group:production" in developer.json()["error"]["message"]
    # The twin: a promoter moves production to what development runs.
    promoter = requests.put(url, headers=bearer(dex.token(**PROMOTER)), timeout=60)
    assert promoter.status_code == 200, promoter.text
    assert deployed(remote, "production", "shop") == 2
    assert remote.log("%an")[0] == "Op Erator"


def test_a_deploy_needs_deploy_release_on_the_environment(
    dex_server: tuple[Server, Remote, Path], dex: Provider
) -> None:
    server, remote, _ = dex_server
    url = f"{server.url}/api/environments/production/applications/shop/deployment"
    with nothing_moves(server, remote):
        developer = requests.put(
            url, json={"version": 1}, headers=bearer(dex.token(**DEV)), timeout=60
        )
    assert developer.status_code == 403
    assert "DeployRelease" in developer.json()["error"]["message"]
    promoter = requests.put(
        url, json={"version": 1}, headers=bearer(dex.token(**PROMOTER)), timeout=60
    )
    assert promoter.status_code == 200, promoter.text
    assert deployed(remote, "production", "shop") == 1


def test_deleting_an_environment_needs_delete_environment(
    dex_server: tuple[Server, Remote, Path], dex: Provider
) -> None:
    server, remote, _ = dex_server
    with nothing_moves(server, remote):
        answer = requests.delete(
            f"{server.url}/api/environments/production",
            headers=bearer(dex.token(**PROMOTER)),
            timeout=60,
        )
    assert answer.status_code == 403
    assert "DeleteEnvironment" in answer.json()["error"]["message"]


def test_a_lock_is_decided_on_the_tree_it_lands_on_not_on_a_stale_mirror(
    dex_server: tuple[Server, Remote, Path], dex: Provider
) -> None:
    server, remote, base = dex_server
    token = dex.token(**DEV)
    url = f"{server.url}/environments/development/locks/stale-mirror"
    # The twin first: CreateLock on dev-group:development is granted.
    allowed = requests.put(url, json={"message": "ok"}, headers=bearer(token), timeout=60)
    assert allowed.status_code == 201, allowed.text
    assert requests.delete(url, headers=bearer(token), timeout=60).status_code == 200
    # Someone else's push moves development into prod-group; the server's mirror does not
    # know yet. The developer has no CreateLock there any more.
    moved = '{"upstream":{"latest":true},"environmentGroup":"prod-group"}'
    remote.push_files(base, {"environments/development/config.json": moved})
    try:
        with nothing_moves(server, remote):
            refused = requests.put(url, json={"message": "x"}, headers=bearer(token), timeout=60)
        assert refused.status_code == 403, refused.text
        assert "prod-group:development" in refused.json()["error"]["message"]
    finally:
        remote.push_files(
            base,
            {
                "environments/development/config.json": CONFIGS[
                    "environments/development/config.json"
                ]
            },
        )


def test_a_group_lock_needs_create_lock_on_every_member(
    dex_server: tuple[Server, Remote, Path], dex: Provider
) -> None:
    server, remote, _ = dex_server
    url = f"{server.url}/environment-groups/prod-group/locks/freeze"
    with nothing_moves(server, remote):
        answer = requests.put(
            url, json={"message": "x"}, headers=bearer(dex.token(**DEV)), timeout=60
        )
    assert answer.status_code == 403
    assert "CreateLock" in answer.json()["error"]["message"]


PAY = {"repository": "acme/pay", "repository_id": "101", "repository_owner_id": "7"}


@pytest.fixture(scope="module")
def github_server(
    tmp_path_factory: pytest.TempPathFactory, github: Provider
) -> Iterator[tuple[Server, Remote]]:
    base = tmp_path_factory.mktemp("github-promotion")
    remote = make_bare_remote(base / "remote.git")
    remote.push_files(base, CONFIGS)
    rules: list[dict[str, object]] = [
        {**PAY, "applications": ["pay"], "environments": ["*"], "promote": ["production"]},
        {"repository": "acme/ledger", "applications": ["ledger"], "environments": ["*"]},
    ]
    settings = {"KUBERPULT_GIT_URL": remote.url, **github_settings(base, github, rules)}
    server = Server(base / "data", settings).start()
    for app, claims in (("pay", PAY), ("ledger", {"repository": "acme/ledger"})):
        token = github.token(audience=GITHUB_AUDIENCE, **claims)
        answer = server.release(
            app, {"development": "v: 1", "production": "v: 1"}, headers=bearer(token)
        )
        assert answer.status_code == 201, answer.text
    yield server, remote
    server.stop()


def test_a_github_token_promotes_only_where_its_rule_says_and_only_its_applications(
    github_server: tuple[Server, Remote], github: Provider
) -> None:
    server, remote = github_server
    url = f"{server.url}/api/environments/production/releasetrain"
    ledger = github.token(audience=GITHUB_AUDIENCE, repository="acme/ledger")
    with nothing_moves(server, remote):
        refused = requests.put(url, headers=bearer(ledger), timeout=60)
        deploy = requests.put(
            f"{server.url}/api/environments/production/applications/ledger/deployment",
            json={"version": 1},
            headers=bearer(ledger),
            timeout=60,
        )
    assert refused.status_code == 403 and '"promote"' in refused.json()["error"]["message"]
    assert deploy.status_code == 403
    # The twin: pay's workflow may promote to production, and moves pay only.
    pay = github.token(audience=GITHUB_AUDIENCE, **PAY)
    answer = requests.put(url, headers=bearer(pay), timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["deployed"] == [
        {"environment": "production", "application": "pay", "version": 1}
    ]
    assert [s["application"] for s in answer.json()["skipped"]] == ["ledger"]
    assert deployed(remote, "production", "pay") == 1
    assert deployed(remote, "production", "ledger") is None
    # And it may not lock, nor promote to development (not in its "promote" list).
    with nothing_moves(server, remote):
        lock = requests.put(
            f"{server.url}/environment-groups/prod-group/locks/x",
            json={"message": "x"},
            headers=bearer(pay),
            timeout=60,
        )
        dev = requests.put(
            f"{server.url}/api/environments/development/releasetrain",
            headers=bearer(pay),
            timeout=60,
        )
    assert lock.status_code == 403
    assert dev.status_code == 403
