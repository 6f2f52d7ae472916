"""The one place errors become HTTP answers, all in one JSON shape:
``{"error": {"code": ..., "message": ...}}`` (plus the fields a ``KuberpultError`` adds)."""

from __future__ import annotations

import logging

from flask import Flask
from flask import Response
from flask import current_app
from flask import jsonify
from werkzeug.exceptions import HTTPException

from server.errors import KuberpultError

log = logging.getLogger(__name__)

_HTTP_CODES = {413: "payload_too_large", 404: "not_found", 405: "method_not_allowed"}


def init_app(app: Flask) -> None:
    """Register the handlers: our typed errors, Werkzeug's, and anything unexpected."""
    app.register_error_handler(KuberpultError, _kuberpult_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def _kuberpult_error(error: KuberpultError) -> tuple[Response, int, dict[str, str]]:
    return jsonify(error.body()), error.status, error.headers()


def _http_error(error: HTTPException) -> tuple[Response, int]:
    status = error.code or 500
    code = _HTTP_CODES.get(status, "http_error")
    message = error.description or error.name
    if status == 413:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        message = f"the request body is larger than the limit of {limit} bytes"
    return jsonify({"error": {"code": code, "message": message}}), status


def _unexpected_error(error: Exception) -> tuple[Response, int]:
    log.exception("unexpected error", exc_info=error)
    return jsonify({"error": {"code": "internal", "message": "internal server error"}}), 500
