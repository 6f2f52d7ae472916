"""HTTP views for releases: the release endpoints, the release receipt and health.

Over 250 lines: the release endpoints and the read and health endpoints share the response helpers;
a split would move them to a third module.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint
from flask import Response
from flask import jsonify
from flask import request

from server import metrics
from server.auth.access import Access
from server.config import redact
from server.errors import AlreadyExistsDifferent
from server.errors import BadRequest
from server.errors import NotFound
from server.errors import Unavailable
from server.errors import ValidationError
from server.http.auth import access
from server.http.auth import current_principal
from server.http.context import get_auth
from server.http.context import get_config
from server.http.context import get_exporter
from server.http.context import get_store
from server.http.multipart import raw_parts
from server.http.openapi import SPEC
from server.models import ReleaseResult
from server.models import StoredRelease
from server.release import form
from server.release.service import ReleaseService
from server.repo.reachability import REPROBE_SECONDS
from server.repo.reachability import probe_remote
from server.repo.reachability import remote_view
from server.repo.reachability import remote_view_name
from server.rules import MAX_VERSION
from server.store.schema import RELEASE_TEXT_FIELDS

bp = Blueprint("api", __name__)


@bp.route("/release", methods=["POST", "PUT"])
@access(Access.LEGACY_RELEASE)
def release() -> Response:
    """Create a release (Kuberpult's legacy endpoint; signatures required with a keyring)."""
    return _create_release(Access.LEGACY_RELEASE)


@bp.route("/api/release", methods=["POST", "PUT"], strict_slashes=False)
@access(Access.RELEASE)
def api_release() -> Response:
    """Create a release (a token, or with a keyring and no Dex, signatures alone)."""
    return _create_release(Access.RELEASE)


def request_headers() -> dict[str, str]:
    """The request's headers with lower-case names, as the pure parsers take them."""
    return {name.lower(): value for name, value in request.headers.items()}


def _create_release(family: Access) -> Response:
    _require_multipart()
    values, files = raw_parts(request)  # text parts as bytes: one UTF-8 rule for all parts
    release_request = form.parse_release(values, files, request_headers(), check_yaml=False)
    store, auth, principal = get_store(), get_auth(), current_principal()
    # Credentials, permissions, and the git author from a verified token's claims; before the
    # YAML check, which costs CPU an unauthenticated body must not be able to spend.
    release_request = auth.authorize_release(family, principal, release_request, store)
    form.check_manifests(release_request)
    try:
        result = ReleaseService(get_config(), store, get_exporter()).create(release_request)
    except AlreadyExistsDifferent as conflict:
        # The diff shows the stored release; only a caller who may read it gets to see it
        # (signatures authenticate a release, they are no read credential).
        if not auth.may_read_release(principal, release_request.application):
            conflict.diff = ""
        raise
    return _release_response(result)


def _require_multipart() -> None:
    if request.mimetype != "multipart/form-data":
        raise BadRequest("Invalid body: request Content-Type isn't multipart/form-data")
    if not request.mimetype_params.get("boundary"):
        raise BadRequest("Invalid body: no multipart boundary param in Content-Type")


def _release_response(result: ReleaseResult) -> Response:
    if result.outcome.value == "Success":
        metrics.RELEASES.inc()
    response = jsonify({result.outcome.value: {}})
    response.status_code = 201 if result.outcome.value == "Success" else 200
    response.headers["Location"] = (
        f"/api/applications/{result.application}/releases/{result.version}"
    )
    response.headers["X-Release-Version"] = str(result.version)
    if result.commit_sha:
        response.headers["X-Manifest-Commit"] = result.commit_sha
    return response


def _release_json(stored: StoredRelease) -> dict[str, Any]:
    body: dict[str, Any] = {
        "application": stored.application,
        "version": stored.version,
        "environments": sorted(stored.manifests),
        "created_at": stored.created_at,
        "state": stored.state.value,
        "commit_sha": stored.commit_sha,
        "pushed_at": stored.pushed_at,
        "error": stored.error,
        "removed_from_repo_at": stored.removed_from_repo_at,
        "author": {"name": stored.author_name, "email": stored.author_email},
    }
    for name in RELEASE_TEXT_FIELDS:
        body[name] = getattr(stored, name)
    return body


@bp.get("/api/applications/<application>/releases/<int:version>")
@access(Access.READ)
def release_receipt(application: str, version: int) -> Response:
    """One release: its metadata, environments, and where it landed in the manifest repo."""
    get_auth().check_read(current_principal(), application)
    stored = get_store().find_release(application, version) if version <= MAX_VERSION else None
    if stored is None:
        raise NotFound(f"release {version} of application {application!r} does not exist")
    return jsonify(_release_json(stored))


@bp.get("/api/applications")
@access(Access.READ)
def applications() -> Response:
    """Every application the caller may read: name, team, newest version."""
    auth, principal = get_auth(), current_principal()
    readable = [a for a in get_store().applications() if auth.may_read(principal, a["name"])]
    return jsonify({"applications": readable})


@bp.get("/api/applications/<application>/releases")
@access(Access.READ)
def releases(application: str) -> Response:
    """An application's releases, newest first, ``?page=1&per_page=20`` (at most 100)."""
    get_auth().check_read(current_principal(), application)
    page = _positive_arg("page", 1)
    per_page = min(_positive_arg("per_page", 20), 100)
    found, total = get_store().releases_page(application, (page - 1) * per_page, per_page)
    if total == 0:
        raise NotFound(f"application {application!r} has no release")
    return jsonify(
        {
            "releases": [_release_json(r) for r in found],
            "page": page,
            "per_page": per_page,
            "total": total,
        }
    )


def _positive_arg(name: str, default: int) -> int:
    raw = request.args.get(name, str(default))
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
        raise ValidationError(name, f"{name} must be a whole number from 1 to 1000000")
    return int(raw)


@bp.get("/api/environments")
@access(Access.READ)
def environments() -> Response:
    """Every environment: config, deployed and queued versions, locks (as of the last push);
    a GitHub token sees the applications its rules name."""
    view, taken = get_store().view("environments")
    auth, principal = get_auth(), current_principal()
    for environment in view.values():
        environment["applications"] = {
            name: entry
            for name, entry in environment.get("applications", {}).items()
            if auth.may_read(principal, name)
        }
    return jsonify({"environments": view, "as_of": taken})


@bp.post("/api/application/<application>/release/manifests/latest")
@access(Access.READ)
def latest_manifests(application: str) -> Response:
    """The manifests of an application's newest release (what the client's dry run diffs)."""
    get_auth().check_read(current_principal(), application)
    store = get_store()
    version = store.highest_version(application)
    stored = store.find_release(application, version) if version is not None else None
    if stored is None:
        raise NotFound(f"application {application!r} has no release")
    manifests = {
        env: {"content": content.decode("utf-8", "replace")}
        for env, content in sorted(stored.manifests.items())
    }
    return jsonify({"manifests": manifests, "version": stored.version})


@bp.get("/healthz")
@access(Access.PUBLIC)
def healthz() -> Response:
    """200 once the server can take releases (its database answers)."""
    pending = get_store().count_pending()
    return jsonify({"status": "ok", "pending_releases": pending})


@bp.get("/api/openapi.json")
@access(Access.PUBLIC)
def openapi() -> Response:
    """The OpenAPI 3.1 description of this API."""
    return jsonify(SPEC)


@bp.get("/metrics")
@access(Access.PUBLIC)
def prometheus_metrics() -> Response:
    """Prometheus metrics of every worker, and the pending queue depth."""
    body, content_type = metrics.render(get_store().count_pending)
    return Response(body, content_type=content_type)


@bp.get("/readyz")
@access(Access.PUBLIC)
def readyz() -> Response:
    """200 when the database answers, the remote has answered since this replica started (a
    fetch at start-up, or a later check) and the last push reached it; 503 with the reason."""
    store, config = get_store(), get_config()
    view_name = remote_view_name(config)
    remote, _ = store.view(view_name)
    last_check = float(remote.get("checked_unix") or 0)
    if not remote.get("ok") and time.time() - last_check >= REPROBE_SECONDS:
        # Not answered yet: ask again, but not more often than every few seconds, whoever asks
        # (the claim keeps other threads and workers from asking at the same time).
        store.save_view(view_name, {**remote, "checked_unix": time.time()})
        remote = remote_view(probe_remote(config, min(config.git_push_timeout, REPROBE_SECONDS)))
        store.save_view(view_name, remote)
    export, _ = store.view("export")
    body = {
        "pending_releases": store.count_pending(),
        "last_export": export or None,
        "replica": config.replica_name,
        # With PostgreSQL: the replica holding the export lock now (None between batches).
        "exporting_replica": store.exporting_replica(),
    }
    if not remote.get("ok"):
        reason = redact(str(remote.get("error") or "not asked yet"))
        raise Unavailable(f"the manifest repository has not answered yet: {reason}")
    if export and not export.get("ok"):
        reason = redact(str(export["error"]))
        raise Unavailable(f"the last push to the manifest repository failed: {reason}")
    return jsonify({"status": "ready", **body})
