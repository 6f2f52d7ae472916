"""The overview page: applications x environments and the latest releases, rendered on the
server (Jinja, no JavaScript), readable on a laptop screen."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint
from flask import render_template
from flask import request

from server.web_auth import api_gate
from server.web_context import get_config
from server.web_context import get_store

bp = Blueprint("overview", __name__)
_WEB_REMOTE = re.compile(r"https://[^/@\s]+/[^@\s]+")


def _commit_url(git_url: str) -> str | None:
    """Where a forge shows a commit of the manifest repository, for https remotes."""
    if not _WEB_REMOTE.fullmatch(git_url):
        return None
    return git_url.removesuffix(".git").rstrip("/") + "/commit/"


@bp.get("/")
@api_gate
def overview() -> str:
    """Applications by environment (deployed, queued, locked) and the latest releases."""
    store, config = get_store(), get_config()
    team = request.args.get("team", "")
    everything = store.applications()
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
        repository=config.git_url,
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
        releases=store.latest_releases(20),
        commit_url=_commit_url(config.git_url),
    )
