"""The overview page: applications x environments and the latest releases, rendered on the
server (Jinja, no JavaScript), readable on a laptop screen."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint
from flask import render_template
from flask import request

from server.auth.access import Access
from server.http.auth import access
from server.http.auth import current_principal
from server.http.context import get_auth
from server.http.context import get_config
from server.http.context import get_store

bp = Blueprint("overview", __name__)
_WEB_REMOTE = re.compile(r"https://[^/@\s]+/[^@\s]+")
# A forge's commit link never needs the credentials a remote URL may carry.
_USERINFO = re.compile(r"\Ahttps://[^/@\s]*@")


def _commit_url(git_url: str) -> str | None:
    """Where a forge shows a commit of the manifest repository, for https remotes."""
    if not _WEB_REMOTE.fullmatch(git_url):
        return None
    return git_url.removesuffix(".git").rstrip("/") + "/commit/"


@bp.get("/")
@access(Access.READ)
def overview() -> str:
    """Applications by environment (deployed, queued, locked) and the latest releases."""
    store, config = get_store(), get_config()
    auth, principal = get_auth(), current_principal()
    team = request.args.get("team", "")
    everything = [a for a in store.applications() if auth.may_read(principal, a["name"])]
    teams = sorted({app["team"] for app in everything if app["team"]})
    applications = [app for app in everything if not team or app["team"] == team]
    view, as_of = store.view("environments")
    environments = sorted(view)
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for app in applications:
        cells[app["name"]] = {}
        for env in environments:
            entry = view[env]["applications"].get(app["name"], {})
            version = entry.get("version")
            release = store.find_release(app["name"], version) if version else None
            cells[app["name"]][env] = {
                "version": version,
                "display": release.display_version if release else None,
                "queued": entry.get("queued_version"),
                "locks": [lock["id"] for lock in entry.get("locks", [])]
                + [lock["id"] for lock in view[env]["team_locks"].get(app["team"] or "", [])],
            }
    return render_template(
        "overview.html",
        repository=config.git_url_for_display,
        branch=config.git_branch,
        as_of=as_of,
        pending=store.count_pending(),
        team=team,
        teams=teams,
        applications=applications,
        environments=environments,
        environment_locks={
            env: [lock["id"] for lock in view[env]["locks"]] for env in environments
        },
        cells=cells,
        releases=[
            r for r in store.latest_releases(20) if auth.may_read(principal, r["application"])
        ],
        promotions=[
            {
                **entry,
                "deployed": [
                    d for d in entry["deployed"] if auth.may_read(principal, d["application"])
                ],
            }
            for entry in store.view("promotions")[0] or []
        ],
        commit_url=_commit_url(_USERINFO.sub("https://", config.git_url)),
    )
