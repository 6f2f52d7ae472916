"""End to end: OIDC bearer tokens from a real provider, Kuberpult's RBAC, GitHub Actions tokens."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from testkit.remote import Remote
from testkit.remote import make_bare_remote
from testkit.server import SERVER_BIN
from testkit.server import Server
from testkit.server import free_port
from testkit.server import unique_app
from tests.oidc_provider import Provider
from tests.oidc_provider import forged
from tests.oidc_provider import standard_claims
from tests.oidc_provider import unknown_key_token

POLICY = """\
p, role:developer, CreateRelease, dev-group:*, *, allow
p, role:developer, DeployRelease, dev-group:development, *, allow
p, role:developer, CreateLock, dev-group:development, *, allow
p, role:payments-only, CreateRelease, *:*, payments, allow
g, developers, role:developer
g, pay@example.com, role:payments-only
"""
TEAMS = "payments,dev@example.com pay@example.com\ncore,dev@example.com\n"
DEVELOPMENT = '{"upstream":{"latest":true},"environmentGroup":"dev-group"}'
DEV = {
    "email": "dev@example.com",
    "email_verified": "true",
    "name": "Dev Eloper",
    "groups": "developers",
}
PAY = {
    "email": "pay@example.com",
    "email_verified": "true",
    "name": "Pay Person",
    "groups": "finance",
}


def seeded_remote(base: Path) -> Remote:
    remote = make_bare_remote(base / "remote.git")
    remote.push_files(
        base,
        {
            "environments/development/config.json": DEVELOPMENT,
            "environments/production/config.json": '{"environmentGroup":"prod-group"}',
        },
    )
    return remote


@pytest.fixture(scope="module")
def protected(
    tmp_path_factory: pytest.TempPathFactory, dex: Provider, github: Provider
) -> Iterator[tuple[Server, Remote]]:
    """A server with Dex and GitHub Actions tokens, RBAC and a team file."""
    base = tmp_path_factory.mktemp("tokens")
    remote = seeded_remote(base)
    (base / "policy.csv").write_text(POLICY)
    (base / "teams.csv").write_text(TEAMS)
    (base / "github.json").write_text(
        '{"rules": [{"repository": "acme/payments", "ref": "refs/heads/main",'
        ' "applications": ["payments"], "environments": ["development"]}]}'
    )
    server = Server(
        base / "data",
        {
            "KUBERPULT_GIT_URL": remote.url,
            "KUBERPULT_DEX_ENABLED": "true",
            "KUBERPULT_DEX_BASE_URL": dex.issuer.removesuffix("/dex"),
            "KUBERPULT_DEX_CLIENT_ID": "kuberpult",
            "KUBERPULT_DEX_RBAC_POLICY_PATH": str(base / "policy.csv"),
            "KUBERPULT_DEX_RBAC_TEAM_PATH": str(base / "teams.csv"),
            "KUBERPULT_GITHUB_OIDC_POLICY_PATH": str(base / "github.json"),
            "KUBERPULT_GITHUB_OIDC_ISSUER": github.issuer,
            "KUBERPULT_GITHUB_OIDC_AUDIENCE": "https://kuberpult.example.com",
        },
    ).start()
    yield server, remote
    server.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_valid_token_releases_and_names_the_author(protected, dex: Provider) -> None:
    server, remote = protected
    app = unique_app()
    response = server.release(app, headers=bearer(dex.token(**DEV)))
    assert response.status_code == 201, response.text
    assert remote.log("%an <%ae>")[0] == "Dev Eloper <dev@example.com>"
    assert remote.exists(f"environments/development/applications/{app}/version")


def test_the_kuberpult_oauth_cookie_works_too(protected, dex: Provider) -> None:
    server, _ = protected
    response = requests.post(
        server.url + "/api/release",
        files=[("application", (None, unique_app())), ("manifests[development]", ("m", b"a: 1"))],
        cookies={"kuberpult.oauth": dex.token(**DEV)},
        # A browser on the server's own page says so; cross-site cookie changes are refused
        # (tests/security/test_dex_tokens.py).
        headers={"Sec-Fetch-Site": "same-origin"},
        timeout=30,
    )
    assert response.status_code == 201, response.text


def test_no_token_is_401_with_a_reason(protected) -> None:
    server, remote = protected
    head = remote.head()
    response = server.release(unique_app())
    assert response.status_code == 401
    assert "accepts Dex token or GitHub Actions token" in response.json()["error"]["message"]
    legacy = server.release(unique_app(), path="/release")
    assert legacy.status_code == 401
    assert remote.head() == head


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "expired"),
        ("wrong-audience", "Audience"),
        ("garbage", "not a JWT"),
        ("wrong-issuer", "not trusted"),
        ("alg-none", "algorithm 'none'"),
        ("hs256-public-key", "algorithm 'HS256'"),
    ],
)
def test_bad_tokens_are_401(protected, dex: Provider, case: str, reason: str) -> None:
    server, remote = protected
    claims = standard_claims(dex.issuer, email="dev@example.com", groups=["developers"])
    makers: dict[str, Callable[[], str]] = {
        "expired": lambda: dex.token(expires_in="-300", **DEV),
        "wrong-audience": lambda: dex.token(audience="someone-else", **DEV),
        "garbage": lambda: "not.a.token",
        "wrong-issuer": lambda: dex.token(iss="https://evil.example.com", **DEV),
        "alg-none": lambda: forged({"alg": "none", "typ": "JWT"}, claims),
        "hs256-public-key": lambda: forged(
            {"alg": "HS256", "typ": "JWT"}, claims, dex.public_key_pem()
        ),
    }
    token = makers[case]()
    head = remote.head()
    response = server.release(unique_app(), headers=bearer(token))
    assert response.status_code == 401, response.text
    assert reason in response.json()["error"]["message"]
    assert remote.head() == head


def test_an_unknown_kid_refetches_the_keys_once_then_401(protected, dex: Provider) -> None:
    server, _ = protected
    # Warm the cache, then wait out the refetch limit that the warm-up may have started.
    assert server.release(unique_app(), headers=bearer(dex.token(**DEV))).status_code == 201
    token = unknown_key_token(standard_claims(dex.issuer, email="dev@example.com"))
    responses = [server.release(unique_app(), headers=bearer(token)) for _ in range(6)]
    assert [r.status_code for r in responses] == [401] * 6
    assert "unknown key" in responses[0].json()["error"]["message"]
    # Two workers, each with its own cache: at most one refetch each per minute.
    before = dex.jwks_fetches()
    for _ in range(4):
        server.release(unique_app(), headers=bearer(token))
    assert dex.jwks_fetches() - before <= 2


def test_rbac_denies_an_environment_group_without_permission(protected, dex: Provider) -> None:
    server, remote = protected
    head = remote.head()
    response = server.release(
        unique_app(), {"production": "a: 1"}, headers=bearer(dex.token(**DEV))
    )
    assert response.status_code == 403
    assert response.json()["error"]["message"] == (
        "PermissionDenied The user 'Dev Eloper' with role 'developer' is not allowed to perform"
        " the action 'CreateRelease' on environment '*'"
    )
    assert remote.head() == head


def test_rbac_limits_a_role_to_its_application(protected, dex: Provider) -> None:
    server, _ = protected
    token = dex.token(**PAY)
    assert (
        server.release("payments", {"production": "a: 1"}, headers=bearer(token)).status_code == 201
    )
    other = server.release(unique_app(), {"production": "a: 1"}, headers=bearer(token))
    assert other.status_code == 403
    # Auto-deploy to development needs DeployRelease there, which this role lacks.
    deploy = server.release("payments", {"development": "a: 1"}, headers=bearer(token))
    assert deploy.status_code == 403
    assert "'DeployRelease' on environment 'dev-group:development'" in deploy.text


def test_the_team_file_limits_who_releases_for_a_team(protected, dex: Provider) -> None:
    server, _ = protected
    denied = server.release(
        "payments",
        {"production": "b: 1"},
        fields={"team": "core"},
        headers=bearer(dex.token(**PAY)),
    )
    assert denied.status_code == 403
    assert denied.json()["error"]["message"] == (
        "PermissionDenied The user Pay Person with email pay@example.com is not allowed to "
        "perform the action CreateRelease for team core"
    )
    allowed = server.release(
        unique_app(), fields={"team": "core"}, headers=bearer(dex.token(**DEV))
    )
    assert allowed.status_code == 201


def test_locks_follow_rbac_too(protected, dex: Provider) -> None:
    server, _ = protected
    url = f"{server.url}/environments/development/locks/rbac-lock"
    assert (
        requests.put(
            url, json={"message": "m"}, headers=bearer(dex.token(**PAY)), timeout=30
        ).status_code
        == 403
    )
    assert (
        requests.put(
            url, json={"message": "m"}, headers=bearer(dex.token(**DEV)), timeout=30
        ).status_code
        == 201
    )


def test_github_actions_tokens_follow_their_policy(protected, github: Provider) -> None:
    server, remote = protected
    audience = "https://kuberpult.example.com"
    good = github.token(audience=audience, repository="acme/payments", ref="refs/heads/main")
    response = server.release("payments", {"development": "gh: 1"}, headers=bearer(good))
    assert response.status_code == 201, response.text
    foreign = github.token(audience=audience, repository="evil/fork", ref="refs/heads/main")
    denied = server.release("payments", {"development": "gh: 2"}, headers=bearer(foreign))
    assert denied.status_code == 401  # no rule matches it: it does not even authenticate
    assert "evil/fork" in denied.json()["error"]["message"]
    branch = github.token(audience=audience, repository="acme/payments", ref="refs/heads/dev")
    assert (
        server.release("payments", {"development": "gh: 3"}, headers=bearer(branch)).status_code
        == 401
    )
    other_app = server.release(unique_app(), headers=bearer(good))
    assert other_app.status_code == 403
    wrong_audience = github.token(
        audience="kuberpult", repository="acme/payments", ref="refs/heads/main"
    )
    assert (
        server.release(
            "payments", {"development": "gh: 4"}, headers=bearer(wrong_audience)
        ).status_code
        == 401
    )


def test_a_provider_that_is_down_with_a_cold_cache_is_503(
    start_server, bare_remote: Remote, tmp_path: Path, dex: Provider
) -> None:
    policy = tmp_path / "policy.csv"
    policy.write_text(POLICY)
    closed = f"http://127.0.0.1:{free_port()}/dex"
    server = start_server(
        bare_remote,
        KUBERPULT_API_ENABLE_DESPITE_NO_AUTH="false",
        KUBERPULT_DEX_ENABLED="true",
        KUBERPULT_DEX_ISSUER_URL=closed,
        KUBERPULT_DEX_CLIENT_ID="kuberpult",
        KUBERPULT_DEX_RBAC_POLICY_PATH=str(policy),
    )
    token = dex.token(iss=closed, **DEV)
    response = server.release(unique_app(), headers=bearer(token))
    assert response.status_code == 503, response.text
    assert "Retry-After" in response.headers
    assert bare_remote.head() is None


def run_server(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SERVER_BIN), *args],
        env={"PATH": "/usr/bin:/bin", "KUBERPULT_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_bad_policy_line_stops_the_server_naming_it(tmp_path: Path) -> None:
    policy = tmp_path / "policy.csv"
    policy.write_text("p, role:x, CreateRelease, a:*, *, allow\np, role:x, Fly, a:b, *, allow\n")
    result = run_server(
        tmp_path,
        KUBERPULT_DEX_ENABLED="true",
        KUBERPULT_DEX_ISSUER_URL="http://127.0.0.1:1/dex",
        KUBERPULT_DEX_CLIENT_ID="kuberpult",
        KUBERPULT_DEX_RBAC_POLICY_PATH=str(policy),
    )
    assert result.returncode == 2
    assert f"{policy} line 2: unknown action 'Fly'" in result.stderr


def test_dex_needs_its_settings(tmp_path: Path) -> None:
    result = run_server(tmp_path, KUBERPULT_DEX_ENABLED="true")
    assert result.returncode == 2
    assert "KUBERPULT_DEX_ISSUER_URL" in result.stderr


def test_no_auth_on_a_public_address_refuses_to_start(tmp_path: Path) -> None:
    result = run_server(tmp_path, "--bind", f"0.0.0.0:{free_port()}")
    assert result.returncode == 2
    assert "refusing to listen on '0.0.0.0'" in result.stderr
    assert "KUBERPULT_PGP_KEY_RING_PATH" in result.stderr


def test_a_warm_key_cache_outlives_the_provider(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    provider = Provider("/dex")
    policy = tmp_path / "policy.csv"
    policy.write_text("p, role:all, CreateRelease, *:*, *, allow\ng, everyone, role:all\n")
    try:
        server = start_server(
            bare_remote,
            workers=1,
            KUBERPULT_API_ENABLE_DESPITE_NO_AUTH="false",
            KUBERPULT_DEX_ENABLED="true",
            KUBERPULT_DEX_ISSUER_URL=provider.issuer,
            KUBERPULT_DEX_CLIENT_ID="kuberpult",
            KUBERPULT_DEX_RBAC_POLICY_PATH=str(policy),
        )
        tokens = [provider.token(email="a@example.com", groups="everyone") for _ in range(2)]
        assert server.release(unique_app(), headers=bearer(tokens[0])).status_code == 201
    finally:
        provider.stop()
    assert server.release(unique_app(), headers=bearer(tokens[1])).status_code == 201
