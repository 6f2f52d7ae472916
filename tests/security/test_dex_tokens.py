"""Attacks 2, 4 and 6 with Dex tokens from a real OIDC provider: claims that would inject into
the commit stream, DeployRelease decided on a stale mirror, and cross-site cookie requests."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from testkit.remote import Remote
from testkit.remote import make_bare_remote
from testkit.server import Server
from testkit.server import unique_app
from tests.oidc_provider import Provider
from tests.security.attack import DEV
from tests.security.attack import POLICY
from tests.security.attack import bearer
from tests.security.attack import dex_settings
from tests.security.attack import nothing_moves
from tests.security.attack import seed

DEPLOYERS = POLICY + (
    "p, role:deployer, DeployRelease, prod-group:production, *, allow\n"
    "g, deployers, role:developer\ng, deployers, role:deployer\n"
)
LATEST_PRODUCTION = '{"upstream":{"latest":true},"environmentGroup":"prod-group"}'


@pytest.fixture
def dex_server(tmp_path: Path, dex: Provider, start_server) -> tuple[Server, Remote]:
    remote = make_bare_remote(tmp_path / "remote.git")
    seed(remote, tmp_path)
    return start_server(remote, **dex_settings(tmp_path, dex, DEPLOYERS)), remote


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("name", "Dev\ncommit refs/heads/main\nmark :99\nauthor x <x@y> 0 +0000"),
        ("name", "Dev <evil@example.com>"),
        ("name", "Dev\rEloper"),
        ("name", "Dev\x00Eloper"),
        ("email", "dev@example.com>\ncommitter x"),
        ("email", "a" * 300 + "@example.com"),
    ],
)
def test_token_claims_that_would_break_a_commit_are_refused(
    dex_server: tuple[Server, Remote], dex: Provider, claim: str, value: str
) -> None:
    server, remote = dex_server
    token = dex.token(**{**DEV, claim: value})
    with nothing_moves(server, remote):
        response = server.release(unique_app(), {"development": "a: 1"}, headers=bearer(token))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == f"token claim '{claim}'"
    assert all("mark :99" not in line for line in remote.log("%an %B"))


def test_the_claims_twin_with_a_plain_name_is_the_author(
    dex_server: tuple[Server, Remote], dex: Provider
) -> None:
    server, remote = dex_server
    response = server.release(
        unique_app(), {"development": "a: 1"}, headers=bearer(dex.token(**DEV))
    )
    assert response.status_code == 201, response.text
    assert remote.log("%an <%ae>")[0] == "Dev Eloper <dev@example.com>"


def test_deploy_release_is_decided_on_the_tree_the_exporter_writes(
    dex_server: tuple[Server, Remote], dex: Provider, tmp_path: Path
) -> None:
    server, remote = dex_server
    # The server's mirror still says production is not upstream-latest; someone else's push
    # makes it so. A developer has CreateRelease everywhere but DeployRelease only on
    # development.
    remote.push_files(tmp_path, {"environments/production/config.json": LATEST_PRODUCTION})
    app = unique_app()
    with nothing_moves(server, remote):
        response = server.release(app, {"production": "a: 1"}, headers=bearer(dex.token(**DEV)))
    assert response.status_code == 403, response.text
    assert "DeployRelease" in response.json()["error"]["message"]
    assert not remote.exists(f"environments/production/applications/{app}")


def test_the_deploy_twin_with_deploy_release_runs_in_production(
    dex_server: tuple[Server, Remote], dex: Provider, tmp_path: Path
) -> None:
    server, remote = dex_server
    remote.push_files(tmp_path, {"environments/production/config.json": LATEST_PRODUCTION})
    app = unique_app()
    deployer = dex.token(**{**DEV, "groups": "deployers"})
    response = server.release(app, {"production": "a: 1"}, headers=bearer(deployer))
    assert response.status_code == 201, response.text
    assert remote.exists(f"environments/production/applications/{app}/version")


def test_an_unverified_email_maps_to_no_role(
    tmp_path: Path, dex: Provider, start_server, bare_remote: Remote
) -> None:
    seed(bare_remote, tmp_path)
    policy = "p, role:boss, CreateRelease, *:*, *, allow\ng, boss@example.com, role:boss\n"
    server = start_server(bare_remote, **dex_settings(tmp_path, dex, policy))
    claims = {"email": "boss@example.com", "name": "Not The Boss"}
    with nothing_moves(server, bare_remote):
        unverified = server.release(
            unique_app(), {"development": "a: 1"}, headers=bearer(dex.token(**claims))
        )
    assert unverified.status_code == 403, unverified.text
    verified = dex.token(**claims, email_verified="true")
    response = server.release(unique_app(), {"production": "a: 1"}, headers=bearer(verified))
    assert response.status_code == 201, response.text


def release_parts() -> dict[str, tuple[str | None, bytes]]:
    """A release's multipart parts, as a browser form would post them."""
    return {"application": (None, unique_app().encode()), "manifests[development]": ("m", b"a: 1")}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
    ],
)
def test_a_cookie_does_not_authenticate_a_cross_site_change(
    dex_server: tuple[Server, Remote], dex: Provider, headers: dict[str, str]
) -> None:
    server, remote = dex_server
    cookie = {"kuberpult.oauth": dex.token(**DEV)}
    with nothing_moves(server, remote):
        release = requests.post(
            server.url + "/api/release",
            files=release_parts(),
            cookies=cookie,
            headers=headers,
            timeout=30,
        )
        lock = requests.put(
            server.url + "/environments/development/locks/csrf",
            json={"message": "x"},
            cookies=cookie,
            headers=headers,
            timeout=30,
        )
    assert (release.status_code, lock.status_code) == (403, 403), release.text
    assert "Sec-Fetch-Site" in release.json()["error"]["message"]


def test_the_cookie_twins_same_origin_and_reads_work(
    dex_server: tuple[Server, Remote], dex: Provider
) -> None:
    server, _ = dex_server
    cookie = {"kuberpult.oauth": dex.token(**DEV)}
    read = requests.get(server.url + "/api/applications", cookies=cookie, timeout=30)
    assert read.status_code == 200
    for headers in ({"Sec-Fetch-Site": "same-origin"}, {"Origin": server.url}):
        response = requests.post(
            server.url + "/api/release",
            files=release_parts(),
            cookies=cookie,
            headers=headers,
            timeout=30,
        )
        assert response.status_code == 201, response.text


def test_a_discovery_document_naming_another_issuer_is_not_trusted(
    tmp_path: Path, dex: Provider, start_server, bare_remote: Remote
) -> None:
    # The provider answers on localhost too, but its discovery document names 127.0.0.1:
    # keys fetched through it belong to another issuer than the configured one.
    alias = dex.issuer.replace("127.0.0.1", "localhost")
    seed(bare_remote, tmp_path)
    settings = {**dex_settings(tmp_path, dex), "KUBERPULT_DEX_ISSUER_URL": alias}
    server = start_server(bare_remote, **settings)
    token = dex.token(**{**DEV, "iss": alias})
    with nothing_moves(server, bare_remote):
        response = server.release(unique_app(), {"development": "a: 1"}, headers=bearer(token))
    assert response.status_code == 503, response.text
    assert "discovery document names issuer" in response.json()["error"]["message"]


def test_a_slow_key_fetch_holds_no_other_request(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from server.auth.oidc import OidcIssuer
    from server.errors import Unavailable

    issuer = OidcIssuer("https://issuer.example", "kuberpult")
    release_fetch = threading.Event()

    def slow_fetch() -> dict[str, object]:
        release_fetch.wait(30)
        return {}

    monkeypatch.setattr(issuer, "_fetch_keys", slow_fetch)
    first = threading.Thread(target=lambda: _ignore(issuer), daemon=True)
    first.start()
    time.sleep(0.2)  # the first request is now inside the fetch
    started = time.monotonic()
    with pytest.raises(Unavailable):
        issuer.verify("x.y.z", {"alg": "RS256", "kid": "k"})
    assert time.monotonic() - started < 1.0, "the second request queued behind the fetch"
    release_fetch.set()
    first.join(5)


def _ignore(issuer: object) -> None:
    from server.errors import KuberpultError

    try:
        issuer.verify("x.y.z", {"alg": "RS256", "kid": "k"})  # type: ignore[attr-defined]
    except KuberpultError:
        pass
