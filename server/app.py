"""The application factory: configuration, storage, the exporter, views and error handlers."""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask
from flask import Response
from flask import jsonify
from werkzeug.exceptions import HTTPException

from server import metrics
from server.auth.gate import Auth
from server.config import Config
from server.errors import KuberpultError
from server.exporter import Exporter
from server.store import Store

log = logging.getLogger(__name__)

# Kuberpult caps the multipart body at 12 MiB.
MAX_BODY_BYTES = 12 * 1024 * 1024
# How often a worker lets git consolidate the packs that batches leave behind.
HOUSEKEEPING_INTERVAL = 600.0


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

    store = Store.for_config(config)
    try:
        store.migrate()
    finally:
        store.close()
    exporter.prepare()

    from server import api
    from server import locks_api
    from server import logs
    from server import overview
    from server.web_context import close_store

    logs.init_app(app)
    app.after_request(_count_request)
    app.register_blueprint(api.bp)
    app.register_blueprint(locks_api.bp)
    app.register_blueprint(overview.bp)
    app.teardown_appcontext(close_store)
    app.register_error_handler(KuberpultError, _kuberpult_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    if config.recovery_interval > 0:
        _start_recovery(config, exporter)
    return app


def _count_request(response: Response) -> Response:
    from flask import request

    metrics.REQUESTS.labels(
        request.endpoint or "unknown", request.method, str(response.status_code)
    ).inc()
    return response


def _kuberpult_error(error: KuberpultError) -> tuple[Response, int, dict[str, str]]:
    return jsonify(error.body()), error.status, error.headers()


def _http_error(error: HTTPException) -> tuple[Response, int]:
    status = error.code or 500
    code = {413: "payload_too_large", 404: "not_found", 405: "method_not_allowed"}.get(
        status, "http_error"
    )
    message = error.description or error.name
    if status == 413:
        message = f"the request body is larger than the limit of {MAX_BODY_BYTES} bytes"
    return jsonify({"error": {"code": code, "message": message}}), status


def _unexpected_error(error: Exception) -> tuple[Response, int]:
    log.exception("unexpected error", exc_info=error)
    return jsonify({"error": {"code": "internal", "message": "internal server error"}}), 500


def _start_recovery(config: Config, exporter: Exporter) -> None:
    """Push whatever is pending, now and every ``recovery_interval`` seconds (one per worker;
    the repo lock keeps them from working at once)."""

    def loop() -> None:
        tidied = time.monotonic()
        # This connection stays open for the worker's life. Besides serving the loop, it keeps
        # SQLite from checkpointing and deleting the WAL each time a request closes the last
        # other connection (which costs an fsync per request).
        store: Store | None = None
        while True:
            try:
                store = store or Store.for_config(config)
                if store.count_pending():
                    deadline = time.monotonic() + config.request_budget
                    report = exporter.export_until(store, None, deadline)
                    if report.error:
                        log.warning("pending releases not pushed yet: %s", report.error)
                if time.monotonic() - tidied > HOUSEKEEPING_INTERVAL:
                    exporter.housekeeping()
                    tidied = time.monotonic()
            except Exception:
                log.exception("recovery round failed")
                if store is not None:
                    store.close()
                store = None
            time.sleep(config.recovery_interval)

    threading.Thread(target=loop, name="kuberpult-recovery", daemon=True).start()
