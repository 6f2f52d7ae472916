"""A release request's multipart parts, as raw bytes, read with the ``multipart`` library.

Werkzeug's form parser costs about half a millisecond of CPU per release request: it compiles
two regular expressions for each request's (random) boundary and builds a ``Headers`` object
per part; under P2's load that was a quarter of a worker's Python time. ``multipart``'s
push parser finds boundaries with ``bytes.find`` and does the same job in about 30 us.

Every part keeps its bytes: a text part (one without a filename) is not decoded, so one UTF-8
rule (``form.parse_release``) applies to both kinds. The limits are the app's:
``MAX_CONTENT_LENGTH`` (Werkzeug's request stream enforces it), ``MAX_FORM_PARTS`` and
``MAX_FORM_MEMORY_SIZE`` (per text part). A body that is not well-formed multipart is a 400
naming the defect, where Werkzeug's parser silently read an empty form.
"""

from __future__ import annotations

import io

from flask import Request
from flask import current_app
from multipart import MultipartSegment
from multipart import ParserError
from multipart import ParserLimitReached
from multipart import PushMultipartParser

from server.errors import BadRequest
from server.errors import PayloadTooLarge

Parts = list[tuple[str, bytes]]

_CHUNK = 64 * 1024
# Per part: Content-Disposition, Content-Type and a few more, as clients send them.
_HEADER_LINES = 8
_HEADER_LINE_BYTES = 4096


def raw_parts(request: Request) -> tuple[Parts, Parts]:
    """The text parts and the file parts of a multipart request, both as bytes, in order.

    Must be the first to read the request's body.

    :raises BadRequest: the body is not well-formed multipart/form-data.
    :raises PayloadTooLarge: more parts than ``MAX_FORM_PARTS``, or a text part larger than
        ``MAX_FORM_MEMORY_SIZE``.
    """
    if "form" in vars(request):
        raise RuntimeError("the request's form was read before raw_parts")
    max_parts = current_app.config.get("MAX_FORM_PARTS")
    max_text = current_app.config.get("MAX_FORM_MEMORY_SIZE")
    values: Parts = []
    files: Parts = []
    name, is_text, content = "", False, io.BytesIO()
    try:
        with _parser(request, max_parts) as parser:
            while not parser.closed:
                for event in parser.parse(request.stream.read(_CHUNK)):
                    if isinstance(event, MultipartSegment):
                        name, is_text, content = event.name, event.filename is None, io.BytesIO()
                    elif event is None:  # the part's end
                        (values if is_text else files).append((name, content.getvalue()))
                    else:
                        content.write(event)
                        if is_text:
                            _check_text_size(name, content.tell(), max_text)
    except ParserLimitReached as error:
        raise PayloadTooLarge(
            f"Invalid body: {error} (at most {max_parts} parts, each with at most "
            f"{_HEADER_LINES} header lines of at most {_HEADER_LINE_BYTES} bytes)"
        ) from None
    except ParserError as error:
        raise BadRequest(f"Invalid body: not well-formed multipart/form-data: {error}") from None
    return values, files


def _parser(request: Request, max_parts: int | None) -> PushMultipartParser:
    length = request.content_length
    return PushMultipartParser(
        request.mimetype_params.get("boundary", ""),
        content_length=-1 if length is None else length,
        max_header_size=_HEADER_LINE_BYTES,
        max_header_count=_HEADER_LINES,
        max_segment_count=float("inf") if max_parts is None else max_parts,
    )


def _check_text_size(name: str, size: int, limit: int | None) -> None:
    if limit is not None and size > limit:
        raise PayloadTooLarge(
            f"Invalid body: the text part {name!r} is larger than the limit of {limit} bytes"
        )
