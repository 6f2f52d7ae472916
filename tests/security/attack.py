"""What every attack test needs: servers configured as teams run them, and the proof that an
attack changed nothing (not the remote, not the store)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testkit.remote import Remote
from testkit.server import Server
from tests.oidc_provider import Provider

POLICY = """\
p, role:developer, CreateRelease, *:*, *, allow
p, role:developer, DeployRelease, dev-group:development, *, allow
p, role:developer, CreateLock, dev-group:development, *, allow
g, developers, role:developer
"""
DEVELOPMENT = '{"upstream":{"latest":true},"environmentGroup":"dev-group"}'
PRODUCTION = '{"environmentGroup":"prod-group"}'
DEV = {"email": "dev@example.com", "name": "Dev Eloper", "groups": "developers"}
GITHUB_AUDIENCE = "https://kuberpult.example.com"


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def seed(remote: Remote, tmp: Path) -> None:
    """A manifest repository with development (upstream latest) and production."""
    remote.push_files(
        tmp,
        {
            "environments/development/config.json": DEVELOPMENT,
            "environments/production/config.json": PRODUCTION,
        },
    )


def dex_settings(base: Path, dex: Provider, policy: str = POLICY) -> dict[str, str]:
    """Dex with Kuberpult's RBAC."""
    (base / "policy.csv").write_text(policy)
    return {
        "KUBERPULT_DEX_ENABLED": "true",
        "KUBERPULT_DEX_ISSUER_URL": dex.issuer,
        "KUBERPULT_DEX_CLIENT_ID": "kuberpult",
        "KUBERPULT_DEX_RBAC_POLICY_PATH": str(base / "policy.csv"),
    }


def github_settings(base: Path, github: Provider, rules: list[dict[str, object]]) -> dict[str, str]:
    """GitHub Actions tokens with a policy of ``rules``."""
    (base / "github.json").write_text(json.dumps({"rules": rules}))
    return {
        "KUBERPULT_GITHUB_OIDC_POLICY_PATH": str(base / "github.json"),
        "KUBERPULT_GITHUB_OIDC_ISSUER": github.issuer,
        "KUBERPULT_GITHUB_OIDC_AUDIENCE": GITHUB_AUDIENCE,
    }


def stored_releases(server: Server) -> list[tuple[str, int]]:
    """Every (application, version) the server's store holds."""
    with sqlite3.connect(server.data_dir / "kuberpult.sqlite3") as db:
        rows = db.execute("select application, version from releases order by id").fetchall()
    return [(str(a), int(v)) for a, v in rows]


@contextmanager
def nothing_moves(server: Server, remote: Remote) -> Iterator[None]:
    """Assert that the block changes neither the remote's branch nor the store."""
    head, releases = remote.head(), stored_releases(server)
    yield
    assert remote.head() == head, "the attack moved the remote"
    assert stored_releases(server) == releases, "the attack changed the store"
