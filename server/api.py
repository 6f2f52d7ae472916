"""HTTP views: the release endpoints, the release receipt and health. The only Flask module
besides the app factory; everything below it takes plain values."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import g
from flask import jsonify
from flask import request

from server import edits
from server import form
from server.config import Config
from server.edits import LockTarget
from server.edits import RepositoryEdits
from server.errors import BadRequest
from server.errors import NotFound
from server.errors import Unauthorized
from server.exporter import Exporter
from server.models import ReleaseResult
from server.service import ReleaseService
from server.store import Store

bp = Blueprint("api", __name__)


def get_config() -> Config:
    """The configuration the app was built with."""
    config: Config = current_app.extensions["kuberpult.config"]
    return config


def get_store() -> Store:
    """The request's SQLite connection, opened on first use and closed on teardown."""
    if "store" not in g:
        g.store = Store(get_config().database_path)
    store: Store = g.store
    return store


def close_store(_error: BaseException | None = None) -> None:
    """Close the request's SQLite connection, if one was opened."""
    store: Store | None = g.pop("store", None)
    if store is not None:
        store.close()


def _service() -> ReleaseService:
    exporter: Exporter = current_app.extensions["kuberpult.exporter"]
    return ReleaseService(get_config(), get_store(), exporter)


@bp.route("/release", methods=["POST", "PUT"])
def release() -> Response:
    """Create a release (Kuberpult's legacy endpoint)."""
    return _create_release()


@bp.route("/api/release", methods=["POST", "PUT"], strict_slashes=False)
def api_release() -> Response:
    """Create a release (Kuberpult's API endpoint, behind the API auth gate)."""
    _require_api_access()
    return _create_release()


def _require_api_access() -> None:
    if not get_config().api_enable_despite_no_auth:
        raise Unauthorized("IAP not enabled, /api unavailable.")


def _create_release() -> Response:
    _require_multipart()
    values = [(name, value) for name, items in request.form.lists() for value in items]
    files = [(name, storage.read()) for name, items in request.files.lists() for storage in items]
    headers = {name.lower(): value for name, value in request.headers.items()}
    release_request = form.parse_release(values, files, headers)
    result = _service().create(release_request)
    return _release_response(result)


def _require_multipart() -> None:
    if request.mimetype != "multipart/form-data":
        raise BadRequest("Invalid body: request Content-Type isn't multipart/form-data")
    if not request.mimetype_params.get("boundary"):
        raise BadRequest("Invalid body: no multipart boundary param in Content-Type")


def _release_response(result: ReleaseResult) -> Response:
    response = jsonify({result.outcome.value: {}})
    response.status_code = 201 if result.outcome.value == "Success" else 200
    response.headers["Location"] = _release_path(result.application, result.version)
    response.headers["X-Release-Version"] = str(result.version)
    if result.commit_sha:
        response.headers["X-Manifest-Commit"] = result.commit_sha
    return response


def _release_path(application: str, version: int) -> str:
    return f"/api/applications/{application}/releases/{version}"


def _edits() -> RepositoryEdits:
    exporter: Exporter = current_app.extensions["kuberpult.exporter"]
    return RepositoryEdits(get_config(), exporter)


def _request_author() -> tuple[str, str]:
    config = get_config()
    headers = {name.lower(): value for name, value in request.headers.items()}
    return (
        form.author_header(headers, "author-name") or config.git_author_name,
        form.author_header(headers, "author-email") or config.git_author_email,
    )


def _lock(target: LockTarget, lock_id: str) -> Response:
    _require_api_access()
    if request.method == "DELETE":
        sha = _edits().delete_lock(target, lock_id, _request_author())
        response = jsonify({"deleted": sha is not None, "commit_sha": sha})
        return response
    body = request.get_json(silent=True)
    lock_request = edits.lock_request(target, lock_id, body)
    sha = _edits().create_lock(lock_request, _request_author())
    response = jsonify({"created": sha is not None, "commit_sha": sha})
    response.status_code = 201 if sha else 200
    return response


@bp.route("/environments/<environment>/locks/<lock_id>", methods=["PUT", "DELETE"])
def environment_lock(environment: str, lock_id: str) -> Response:
    """Create or delete an environment lock."""
    return _lock(edits.lock_target(environment), lock_id)


@bp.route(
    "/environments/<environment>/applications/<application>/locks/<lock_id>",
    methods=["PUT", "DELETE"],
)
def application_lock(environment: str, application: str, lock_id: str) -> Response:
    """Create or delete an application lock in one environment."""
    return _lock(edits.lock_target(environment, application=application), lock_id)


@bp.route("/api/environments/<environment>/lock/team/<team>/<lock_id>", methods=["PUT", "DELETE"])
def team_lock(environment: str, team: str, lock_id: str) -> Response:
    """Create or delete a team lock in one environment."""
    return _lock(edits.lock_target(environment, team=team), lock_id)


@bp.get("/api/applications/<application>/releases/<int:version>")
def release_receipt(application: str, version: int) -> Response:
    """One release: its metadata, environments, and where it landed in the manifest repo."""
    _require_api_access()
    stored = get_store().find_release(application, version)
    if stored is None:
        raise NotFound(f"release {version} of application {application!r} does not exist")
    body: dict[str, Any] = {
        "application": stored.application,
        "version": stored.version,
        "environments": sorted(stored.manifests),
        "created_at": stored.created_at,
        "state": stored.state.value,
        "commit_sha": stored.commit_sha,
        "error": stored.error,
        "removed_from_repo_at": stored.removed_from_repo_at,
    }
    for name in (
        "source_commit_id",
        "previous_commit_id",
        "source_author",
        "source_message",
        "display_version",
        "team",
        "ci_link",
    ):
        body[name] = getattr(stored, name)
    return jsonify(body)


@bp.get("/healthz")
def healthz() -> Response:
    """200 once the server can take releases (its database answers)."""
    pending = get_store().count_pending()
    return jsonify({"status": "ok", "pending_releases": pending})
