"""Every route declares who may call it, and the README's two tables say what the code does."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from server.auth.access import Access
from server.auth.access import requirement
from server.config import Config
from server.http.app import create_app
from server.http.auth import ACCESS_ATTRIBUTE
from server.http.auth import access
from testkit.server import ROOT

# The README's column names → the credential settings they stand for.
SETUPS: dict[str, dict[str, object]] = {
    "none": {},
    "opt-out": {"api_enable_despite_no_auth": True},
    "keyring": {"pgp_key_ring_path": Path("keyring.asc")},
    "Dex": {"dex_enabled": True},
    "Dex + keyring": {"dex_enabled": True, "pgp_key_ring_path": Path("keyring.asc")},
    "GitHub": {"github_oidc_policy_path": Path("github.json")},
    "GitHub + keyring": {
        "github_oidc_policy_path": Path("github.json"),
        "pgp_key_ring_path": Path("keyring.asc"),
    },
}


def routes_by_family(app: Flask) -> dict[str, str | None]:
    """``"METHODS path"`` → the declared family of its view (None: undeclared)."""
    found: dict[str, str | None] = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        methods = ", ".join(sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}))
        family = getattr(view, ACCESS_ATTRIBUTE, None)
        found[f"{methods} {rule.rule}"] = None if family is None else str(family)
    return found


def readme_table(marker: str) -> list[list[str]]:
    """The rows of the README table under ``<!-- marker ... -->`` (header row first)."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"<!-- {marker}"))
    rows = []
    for line in lines[start + 1 :]:
        if not line.startswith("|"):
            break
        if not line.startswith("|---"):
            rows.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
    return rows


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    data = tmp_path_factory.mktemp("routes")
    config = Config.from_env(
        {
            "KUBERPULT_DATA_DIR": str(data),
            "KUBERPULT_API_ENABLE_DESPITE_NO_AUTH": "true",
            "KUBERPULT_RECOVERY_INTERVAL": "0",
        }
    )
    return create_app(config)


def test_every_route_declares_its_access_family(app: Flask) -> None:
    undeclared = [route for route, family in routes_by_family(app).items() if family is None]
    assert undeclared == []


def test_the_check_catches_a_route_added_without_a_family(app: Flask) -> None:
    # The twin: the same check must fail for an open route, else it proves nothing.
    toy = Flask("toy")
    toy.add_url_rule("/declared", "declared", access(Access.READ)(lambda: "ok"))
    toy.add_url_rule("/forgotten", "forgotten", lambda: "open to all")
    found = routes_by_family(toy)
    assert found["GET /declared"] == "read"
    assert found["GET /forgotten"] is None


def test_the_readme_lists_every_route_with_its_family(app: Flask) -> None:
    documented = {route: family for route, family in readme_table("access-routes")[1:]}
    assert documented == routes_by_family(app)


def test_the_readme_matrix_is_what_the_code_requires() -> None:
    header, *rows = readme_table("access-matrix")
    assert header[1:] == list(SETUPS)
    assert [row[0] for row in rows] == [family.value for family in Access]
    for row in rows:
        family = Access(row[0])
        for column, cell in zip(header[1:], row[1:], strict=True):
            config = Config(data_dir=Path("/nowhere"), git_url="/nowhere", **SETUPS[column])  # type: ignore[arg-type]
            assert cell == str(requirement(family, config)), (family, column)
