"""HTTP views for locks, at the paths Kuberpult's client uses."""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from flask import jsonify
from flask import request

from server.auth.access import Access
from server.http.api import request_headers
from server.http.auth import access
from server.http.auth import current_principal
from server.http.bodies import json_body
from server.http.context import get_auth
from server.http.context import get_config
from server.http.context import get_exporter
from server.http.context import get_store
from server.release import edits
from server.release import form
from server.release import promotion
from server.release.edits import LockTarget
from server.release.edits import RepositoryEdits

bp = Blueprint("locks", __name__)


def request_author() -> tuple[str, str]:
    """The lock's author: the token's claims, else the author headers, else the default."""
    principal = current_principal()
    if principal and principal.author:
        return principal.author
    config, headers = get_config(), request_headers()
    return (
        form.author_header(headers, "author-name") or config.git_author_name,
        form.author_header(headers, "author-email") or config.git_author_email,
    )


def _lock(target: LockTarget, lock_id: str) -> Response:
    deleting = request.method == "DELETE"
    get_auth().authorize_lock(
        current_principal(),
        "DeleteLock" if deleting else "CreateLock",
        target.environment,
        target.application,
        get_store(),
    )
    repository = RepositoryEdits(get_config(), get_exporter(), get_store())
    # Decided again on the tree the lock lands on: a foreign push may have moved the
    # environment into another group since the store's mirror was refreshed.
    permissions = get_auth().permissions(current_principal())
    if deleting:
        sha = repository.delete_lock(target, lock_id, request_author(), permissions)
        return jsonify({"deleted": sha is not None, "commit_sha": sha})
    lock_request = edits.lock_request(target, lock_id, json_body())
    sha = repository.create_lock(lock_request, request_author(), permissions)
    response = jsonify({"created": sha is not None, "commit_sha": sha})
    response.status_code = 201 if sha else 200
    return response


@bp.route("/environments/<environment>/locks/<lock_id>", methods=["PUT", "DELETE"])
@access(Access.LOCK)
def environment_lock(environment: str, lock_id: str) -> Response:
    """Create or delete an environment lock."""
    return _lock(edits.lock_target(environment), lock_id)


@bp.route(
    "/environments/<environment>/applications/<application>/locks/<lock_id>",
    methods=["PUT", "DELETE"],
)
@access(Access.LOCK)
def application_lock(environment: str, application: str, lock_id: str) -> Response:
    """Create or delete an application lock in one environment."""
    return _lock(edits.lock_target(environment, application=application), lock_id)


@bp.route("/api/environments/<environment>/lock/team/<team>/<lock_id>", methods=["PUT", "DELETE"])
@access(Access.LOCK)
def team_lock(environment: str, team: str, lock_id: str) -> Response:
    """Create or delete a team lock in one environment."""
    return _lock(edits.lock_target(environment, team=team), lock_id)


@bp.route("/environment-groups/<group>/locks/<lock_id>", methods=["PUT", "DELETE"])
@access(Access.LOCK)
def group_lock(group: str, lock_id: str) -> Response:
    """Create or delete the same environment lock on every member of an environment group."""
    promotion.name("environmentGroup", group)
    permissions = get_auth().permissions(current_principal())
    repository = RepositoryEdits(get_config(), get_exporter(), get_store())
    author = request_author()
    if request.method == "DELETE":
        edit = promotion.group_lock(group, edits.lock_id(lock_id), permissions, author)
        sha = repository.run(edit, author)
        return jsonify({"deleted": sha is not None, "commit_sha": sha})
    # Any member will do for the target: the group edit writes one lock per member.
    lock_request = edits.lock_request(edits.LockTarget(group), lock_id, json_body())
    sha = repository.run(promotion.group_lock(group, lock_request, permissions, author), author)
    response = jsonify({"created": sha is not None, "commit_sha": sha})
    response.status_code = 201 if sha else 200
    return response
