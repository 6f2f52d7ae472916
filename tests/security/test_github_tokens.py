"""Attack 3: GitHub Actions tokens. Anyone on GitHub can mint a token for our audience from
their own repository; such a token must neither release nor read."""

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
from tests.oidc_provider import Provider
from tests.oidc_provider import forged
from tests.oidc_provider import standard_claims
from tests.oidc_provider import unknown_key_token
from tests.security.attack import GITHUB_AUDIENCE
from tests.security.attack import bearer
from tests.security.attack import github_settings
from tests.security.attack import nothing_moves
from tests.security.attack import seed

PAY = {"repository": "acme/pay", "repository_id": "101", "repository_owner_id": "7"}
RULES: list[dict[str, object]] = [
    {**PAY, "applications": ["pay"], "environments": ["development"]},
]


@pytest.fixture(scope="module")
def released(
    tmp_path_factory: pytest.TempPathFactory, github: Provider
) -> Iterator[tuple[Server, Remote]]:
    """A GitHub-policy server where ``pay`` (allowed) and ``ledger`` (not) are released."""
    base = tmp_path_factory.mktemp("github")
    remote = make_bare_remote(base / "remote.git")
    seed(remote, base)
    rules: list[dict[str, object]] = [
        *RULES,
        {"repository": "acme/ledger", "applications": ["ledger"], "environments": ["*"]},
    ]
    server = Server(
        base / "data", {"KUBERPULT_GIT_URL": remote.url, **github_settings(base, github, rules)}
    )
    server.start()
    for app, claims in (("pay", PAY), ("ledger", {"repository": "acme/ledger"})):
        token = github.token(audience=GITHUB_AUDIENCE, **claims)
        response = server.release(app, {"development": f"app: {app}"}, headers=bearer(token))
        assert response.status_code == 201, response.text
    yield server, remote
    server.stop()


def reads(server: Server, token: str) -> dict[str, requests.Response]:
    """Every read of the server with ``token``."""

    def get(path: str) -> requests.Response:
        return requests.get(server.url + path, headers=bearer(token), timeout=30)

    return {
        "applications": get("/api/applications"),
        "environments": get("/api/environments"),
        "overview": get("/"),
        "ledger receipt": get("/api/applications/ledger/releases/1"),
        "ledger releases": get("/api/applications/ledger/releases"),
        "ledger manifests": requests.post(
            server.url + "/api/application/ledger/release/manifests/latest",
            headers=bearer(token),
            timeout=30,
        ),
    }


def test_a_token_of_any_other_repository_neither_releases_nor_reads(
    released: tuple[Server, Remote], github: Provider
) -> None:
    server, remote = released
    stranger = github.token(audience=GITHUB_AUDIENCE, repository="mallory/anything")
    with nothing_moves(server, remote):
        release = server.release("pay", {"development": "evil: 1"}, headers=bearer(stranger))
    assert release.status_code == 401
    for name, response in reads(server, stranger).items():
        assert response.status_code == 401, name
        assert "app: ledger" not in response.text, name


@pytest.mark.parametrize(
    "pins",
    [
        {"repository_id": "999"},  # the name was re-registered by someone else
        {"repository_owner_id": "666"},
        {"repository_id": None},
    ],
)
def test_pinned_ids_refuse_a_token_with_the_right_name(
    released: tuple[Server, Remote], github: Provider, pins: dict[str, str | None]
) -> None:
    server, remote = released
    claims = {k: v for k, v in {**PAY, **pins}.items() if v is not None}
    token = github.token(audience=GITHUB_AUDIENCE, **claims)
    with nothing_moves(server, remote):
        response = server.release("pay", {"development": "evil: 1"}, headers=bearer(token))
    assert response.status_code == 401


def test_a_token_reads_only_the_applications_its_rules_name(
    released: tuple[Server, Remote], github: Provider
) -> None:
    server, _ = released
    pay = github.token(audience=GITHUB_AUDIENCE, **PAY)
    found = reads(server, pay)
    names = [a["name"] for a in found["applications"].json()["applications"]]
    assert names == ["pay"]
    for env in found["environments"].json()["environments"].values():
        assert "ledger" not in env["applications"]
    assert found["overview"].status_code == 200
    assert "ledger" not in found["overview"].text
    for name in ("ledger receipt", "ledger releases", "ledger manifests"):
        assert found[name].status_code == 403, name
        assert "app: ledger" not in found[name].text
    own = requests.get(
        server.url + "/api/applications/pay/releases/1", headers=bearer(pay), timeout=30
    )
    assert own.status_code == 200


def _tokens(github: Provider) -> dict[str, Callable[[], str]]:
    claims = standard_claims(github.issuer, GITHUB_AUDIENCE, **PAY)
    return {
        "other key": lambda: unknown_key_token(claims),
        "expired": lambda: github.token(audience=GITHUB_AUDIENCE, expires_in="-300", **PAY),
        "wrong audience": lambda: github.token(audience="kuberpult-lite", **PAY),
        "alg none": lambda: forged({"alg": "none", "typ": "JWT"}, claims),
        "hs256 with the public key": lambda: forged(
            {"alg": "HS256", "typ": "JWT"}, claims, github.public_key_pem()
        ),
        "other issuer": lambda: github.token(
            audience=GITHUB_AUDIENCE, iss="https://token.actions.githubusercontent.com", **PAY
        ),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "other key",
        "expired",
        "wrong audience",
        "alg none",
        "hs256 with the public key",
        "other issuer",
    ],
)
def test_bad_tokens_are_refused(
    released: tuple[Server, Remote], github: Provider, kind: str
) -> None:
    server, remote = released
    token = _tokens(github)[kind]()
    with nothing_moves(server, remote):
        response = server.release("pay", {"development": "evil: 1"}, headers=bearer(token))
    assert response.status_code == 401, response.text
    read = requests.get(server.url + "/api/applications", headers=bearer(token), timeout=30)
    assert read.status_code == 401


def test_the_server_refuses_to_start_without_an_audience(tmp_path: Path) -> None:
    (tmp_path / "github.json").write_text('{"rules": []}')
    result = subprocess.run(
        [str(SERVER_BIN)],
        env={
            "PATH": "/usr/bin:/bin",
            "KUBERPULT_DATA_DIR": str(tmp_path / "data"),
            "KUBERPULT_GITHUB_OIDC_POLICY_PATH": str(tmp_path / "github.json"),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "KUBERPULT_GITHUB_OIDC_AUDIENCE" in result.stderr
    assert "public URL" in result.stderr
