"""HTTP views for what happens after a release: release trains, deploys of one version,
deleting an environment, and the two read endpoints Kuberpult's client calls about commits."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import Response
from flask import jsonify
from flask import request

from server import rules
from server.auth.access import Access
from server.errors import NotFound
from server.errors import ValidationError
from server.http.auth import access
from server.http.auth import current_principal
from server.http.bodies import json_body
from server.http.context import get_auth
from server.http.context import get_config
from server.http.context import get_exporter
from server.http.context import get_store
from server.http.locks import request_author
from server.release import promotion
from server.release import trains
from server.release.edits import RepositoryEdits
from server.rules import MAX_VERSION

bp = Blueprint("promotion", __name__)


def _json_body(allowed: set[str]) -> dict[str, Any]:
    """An optional JSON object body: empty is ``{}``; anything else must parse."""
    body = json_body()
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ValidationError("body", "the body must be empty or a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ValidationError(unknown[0], f"unknown field {unknown[0]!r} in the body")
    return body


def _release_train(target: trains.TrainTarget) -> Response:
    team = request.args.get("team") or None
    if team is not None:
        rules.team(team)
    ci_link = _json_body({"ciLink"}).get("ciLink")
    if ci_link is not None and not isinstance(ci_link, str):
        raise ValidationError("ciLink", "ciLink must be a string")
    ci_link = rules.ci_link(ci_link) if ci_link else None
    outcome = trains.TrainOutcome()
    author = request_author()
    permissions = get_auth().permissions(current_principal())
    edit = trains.release_train(target, team, ci_link, permissions, author, outcome)
    sha = RepositoryEdits(get_config(), get_exporter(), get_store()).run(edit, author)
    if sha:
        what = f"release train into {target.name}" + (f" (team {team})" if team else "")
        promotion.remember(get_store(), what, author, sha, outcome.deployed, len(outcome.skipped))
    body: dict[str, Any] = {"target": target.name}
    if team:
        body["team"] = team
    body.update(commit_sha=sha, deployed=outcome.deployed, skipped=outcome.skipped)
    return jsonify(body)


@bp.put("/api/environments/<environment>/releasetrain")
@access(Access.PROMOTE)
def environment_release_train(environment: str) -> Response:
    """Deploy to ``environment`` what its upstream runs (or the newest releases)."""
    return _release_train(trains.TrainTarget(promotion.name("environment", environment)))


@bp.put("/api/environment-groups/<group>/releasetrain")
@access(Access.PROMOTE)
def group_release_train(group: str) -> Response:
    """A release train into every environment of an environment group, one commit."""
    target = trains.TrainTarget(promotion.name("environmentGroup", group), group=True)
    return _release_train(target)


@bp.put("/api/environments/<environment>/applications/<application>/deployment")
@access(Access.PROMOTE)
def deployment(environment: str, application: str) -> Response:
    """Deploy one version that is already in the repository (``lockBehavior``: record,
    the default, queues it behind a lock; fail answers 409; ignore deploys anyway)."""
    promotion.name("environment", environment)
    rules.application(application)
    body = _json_body({"version", "lockBehavior"})
    version = body.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise ValidationError("version", f"version must be a whole number from 1 to {MAX_VERSION}")
    behavior = body.get("lockBehavior", "record")
    if behavior not in promotion.LOCK_BEHAVIORS:
        raise ValidationError(
            "lockBehavior", f"lockBehavior must be one of {', '.join(promotion.LOCK_BEHAVIORS)}"
        )
    author = request_author()
    outcome = promotion.DeployOutcome()
    permissions = get_auth().permissions(current_principal())
    edit = promotion.deploy(
        environment, application, version, behavior, permissions, author, outcome
    )
    sha = RepositoryEdits(get_config(), get_exporter(), get_store()).run(edit, author)
    if sha:
        moved = {"environment": environment, "application": application, "version": version}
        what = "queued by deploy" if outcome.queued else "deploy"
        promotion.remember(get_store(), what, author, sha, [moved])
    return jsonify(
        {
            "environment": environment,
            "application": application,
            "version": version,
            "queued": outcome.queued,
            "commit_sha": sha,
        }
    )


@bp.delete("/api/environments/<environment>")
@access(Access.ENVIRONMENT)
def delete_environment(environment: str) -> Response:
    """Delete an environment no application runs in, with no locks and no downstream."""
    promotion.name("environment", environment)
    permissions = get_auth().permissions(current_principal())
    author = request_author()
    edit = promotion.delete_environment(environment, permissions)
    sha = RepositoryEdits(get_config(), get_exporter(), get_store()).run(edit, author)
    return jsonify({"deleted": sha is not None, "commit_sha": sha})


@bp.get("/api/commit-deployments/<commit>")
@access(Access.READ)
def commit_deployments(commit: str) -> Response:
    """Per application built from ``commit`` and per environment: DEPLOYED once the
    environment runs that release or a newer one, PENDING before, UNKNOWN where the release
    has no manifest (Kuberpult's shape; as of the last push)."""
    rules.commit_id("commit", commit)
    auth, principal = get_auth(), current_principal()
    store = get_store()
    found = [r for r in store.releases_of_commit(commit) if auth.may_read(principal, r[0])]
    if not found:
        raise NotFound(f"no release was built from commit {commit!r}")
    view, _ = store.view("environments")
    status: dict[str, Any] = {}
    for application, version, targets in found:
        per_environment = {}
        for environment, entry in sorted(view.items()):
            deployed = entry.get("applications", {}).get(application, {}).get("version")
            if environment not in targets:
                per_environment[environment] = "UNKNOWN"
            elif deployed is not None and deployed >= version:
                per_environment[environment] = "DEPLOYED"
            else:
                per_environment[environment] = "PENDING"
        status[application] = {"deploymentStatus": per_environment}
    return jsonify({"deploymentStatus": status})


@bp.get("/api/environments/<environment>/applications/<application>/commit")
@access(Access.READ)
def deployment_commit(environment: str, application: str) -> Response:
    """The source commit of the release ``environment`` runs: ``{"author", "commit_id",
    "commit_message"}`` (empty ones left out; ``{}`` when nothing is deployed, as Kuberpult)."""
    promotion.name("environment", environment)
    rules.application(application)
    get_auth().check_read(current_principal(), application)
    store = get_store()
    view, _ = store.view("environments")
    entry = view.get(environment, {}).get("applications", {}).get(application, {})
    version = entry.get("version")
    stored = store.find_release(application, version) if isinstance(version, int) else None
    if stored is None:
        return jsonify({})
    body = {
        "author": stored.source_author,
        "commit_id": stored.source_commit_id,
        "commit_message": stored.source_message,
    }
    return jsonify({key: value for key, value in body.items() if value})
