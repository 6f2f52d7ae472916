"""The application factory: wires configuration, auth, the store and the exporter to the
views, once per gunicorn worker."""

from __future__ import annotations

import logging

from flask import Flask
from flask import Response
from flask import request

from server import metrics
from server.auth.gate import Auth
from server.config import Config
from server.errors import Unavailable
from server.http import api
from server.http import errors
from server.http import locks
from server.http import logs
from server.http import overview
from server.http import promotion
from server.http.context import close_store
from server.repo.exporter import Exporter
from server.repo.recovery import start_recovery
from server.store import open_store

log = logging.getLogger(__name__)

# Kuberpult caps the multipart body at 12 MiB.
MAX_BODY_BYTES = 12 * 1024 * 1024


def create_app(config: Config | None = None) -> Flask:
    """Build the app; ``config`` defaults to the one read from the environment."""
    config = config or Config.from_env()
    config.data_dir.mkdir(parents=True, exist_ok=True)
    # No static folder: every route is declared below, with its access family.
    app = Flask(__name__, static_folder=None)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        # Manifests may arrive as text parts too, so text parts get the whole body's limit.
        MAX_FORM_MEMORY_SIZE=MAX_BODY_BYTES,
        MAX_FORM_PARTS=250,
    )
    exporter = Exporter(config)
    auth = Auth(config)
    exporter.release_guard = auth.guard_release_on_tree
    app.extensions["kuberpult.config"] = config
    app.extensions["kuberpult.exporter"] = exporter
    app.extensions["kuberpult.auth"] = auth

    try:
        store = open_store(config)
        try:
            store.migrate()
            exporter.prepare(store)
        finally:
            store.close()
    except Unavailable as error:
        # The master migrated before the first workers started; a worker started later (after
        # a crash) while the database is away must still come up: gunicorn stops the whole
        # server when a worker fails to boot. Its recovery round catches up once it is back.
        log.warning("worker started without the database: %s", error.message)

    logs.init_app(app)
    app.after_request(_count_request)
    app.register_blueprint(api.bp)
    app.register_blueprint(locks.bp)
    app.register_blueprint(overview.bp)
    app.register_blueprint(promotion.bp)
    app.teardown_appcontext(close_store)
    errors.init_app(app)
    if config.recovery_interval > 0:
        start_recovery(config, exporter)
    return app


def _count_request(response: Response) -> Response:
    metrics.REQUESTS.labels(
        request.endpoint or "unknown", request.method, str(response.status_code)
    ).inc()
    return response
