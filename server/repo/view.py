"""What the manifest repository says now, for the read API: environments with their config,
deployed and queued versions, and locks. Built by the exporter from the working clone (the only
code that reads it) and kept in SQLite, so readers never touch git."""

from __future__ import annotations

from typing import Any

from server.repo.environments import read_config
from server.repo.layout import deployed_version
from server.repo.layout import deployment_dir
from server.repo.safe_tree import ApplyError
from server.repo.safe_tree import Parts
from server.repo.safe_tree import SafeTree
from server.rules import NAME


def _names(tree: SafeTree, parts: Parts) -> list[str]:
    """Sub-directories of ``parts`` whose names could be ours (anything else is skipped)."""
    try:
        return [n for n in tree.list(parts) if NAME.fullmatch(n) and tree.is_dir((*parts, n))]
    except ApplyError:
        return []


def _locks(tree: SafeTree, directory: Parts) -> list[dict[str, str]]:
    found = []
    try:
        lock_ids = tree.list(directory)
    except ApplyError:
        return []
    for lock_id in lock_ids:
        if not tree.is_dir((*directory, lock_id)):
            continue
        lock = {"id": lock_id}
        for name in ("message", "created_by_name", "created_by_email", "created_at"):
            try:
                content = tree.read((*directory, lock_id, name))
            except ApplyError:
                content = None
            lock[name] = content.decode("utf-8", "replace") if content else ""
        found.append(lock)
    return found


def environments_view(tree: SafeTree) -> dict[str, Any]:
    """Every environment: config, deployed/queued version per application, locks."""
    view: dict[str, Any] = {}
    for env in _names(tree, ("environments",)):
        try:
            config = read_config(tree, env)
            config_view: dict[str, Any] = {
                "upstream_latest": config.upstream_latest,
                "upstream_environment": config.upstream_environment,
                "environment_group": config.group,
            }
        except ApplyError as error:
            config_view = {"error": str(error)}
        applications = {}
        for app in _names(tree, ("environments", env, "applications")):
            queued = tree.read_symlink((*deployment_dir(env, app), "queued_version"))
            applications[app] = {
                "version": deployed_version(tree, env, app),
                "queued_version": int(queued.rsplit("/", 1)[-1])
                if queued and queued.rsplit("/", 1)[-1].isdigit()
                else None,
                "locks": _locks(tree, (*deployment_dir(env, app), "locks")),
            }
        teams = {
            team: _locks(tree, ("environments", env, "teams", team, "locks"))
            for team in _names(tree, ("environments", env, "teams"))
        }
        view[env] = {
            "config": config_view,
            "locks": _locks(tree, ("environments", env, "locks")),
            "team_locks": {team: locks for team, locks in teams.items() if locks},
            "applications": applications,
        }
    return view
