"""Fixtures: real bare git remotes, real gunicorn servers on 127.0.0.1, real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from testkit.postgres import PostgresServer
from testkit.remote import Remote
from testkit.remote import make_bare_remote
from testkit.server import Server
from testkit.server import open_without_auth
from testkit.server import stop_gpg_agent
from tests.gpg_keys import Keys
from tests.gpg_keys import make_keys

if TYPE_CHECKING:
    from tests.oidc_provider import Provider


@pytest.fixture
def bare_remote(tmp_path: Path) -> Remote:
    """An empty bare repository in tmp_path."""
    return make_bare_remote(tmp_path / "remote.git")


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers with extra environment; every one is stopped after the test."""
    started: list[Server] = []

    def start(
        remote: Remote | None = None, workers: int = 2, name: str = "data", **env: str
    ) -> Server:
        settings = {**open_without_auth(env), **env}
        if remote is not None:
            settings["KUBERPULT_GIT_URL"] = remote.url
        server = Server(tmp_path / name, settings, workers)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def gpg_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    """Real gpg keys: trusted, unknown, expired, revoked, and one signing with a subkey."""
    keys = make_keys(tmp_path_factory.mktemp("gpg"))
    yield keys
    stop_gpg_agent(keys.home)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Remote]]:
    """One server and its remote for a whole test module; tests use unique app names."""
    base = tmp_path_factory.mktemp("shared")
    remote = make_bare_remote(base / "remote.git")
    server = Server(
        base / "data",
        {"KUBERPULT_API_ENABLE_DESPITE_NO_AUTH": "true", "KUBERPULT_GIT_URL": remote.url},
    ).start()
    yield server, remote
    server.stop()


@pytest.fixture(scope="module")
def dex() -> Iterator[Provider]:
    """The Dex stand-in, a real OIDC provider: its issuer is <base>/dex."""
    from tests.oidc_provider import Provider  # it imports this module (free_port)

    provider = Provider("/dex")
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def github() -> Iterator[Provider]:
    """The GitHub Actions token service stand-in."""
    from tests.oidc_provider import Provider

    provider = Provider("")
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server (Debian's package) for the whole run; tests take databases."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return postgres_server.database()
