"""JSON request bodies, read the same way by every view that takes one."""

from __future__ import annotations

import json

from flask import request

from server.errors import ValidationError


def json_body() -> object | None:
    """The body as JSON, whatever its Content-Type says; None when it is empty.

    :raises ValidationError: the body is not UTF-8 JSON (or nests too deeply to read).
    """
    data = request.get_data(cache=True)
    if not data.strip():
        return None
    try:
        parsed: object = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValidationError(
            "body", "the body is not valid JSON (UTF-8, at most a few hundred levels deep)"
        ) from None
    return parsed
