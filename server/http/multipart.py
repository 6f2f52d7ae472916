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
import re
from collections.abc import Iterator
from typing import IO

from flask import Request
from flask import current_app
from multipart import MultipartSegment
from multipart import ParserError
from multipart import ParserLimitReached
from multipart import PushMultipartParser
from werkzeug.exceptions import HTTPException

from server.errors import BadRequest
from server.errors import PayloadTooLarge

Parts = list[tuple[str, bytes]]

_CHUNK = 64 * 1024
# Per part: Content-Disposition, Content-Type and a few more, as clients send them.
_HEADER_LINES = 8
_HEADER_LINE_BYTES = 4096
# RFC 2046's boundary characters (a CR or LF in one would make the delimiter ambiguous); the
# length is generous, as some clients go past the RFC's 70.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{1,200}")


def raw_parts(request: Request) -> tuple[Parts, Parts]:
    """The text parts and the file parts of a multipart request, both as bytes, in order.

    Must be the first to read the request's body. The parser runs in its strict mode: a
    part header folded over several lines (RFC 7578 has none, and each continuation line
    cost a rebuild of the whole header) or a preamble longer than the first read is refused.

    :raises BadRequest: the body is not well-formed multipart/form-data, or cannot be read.
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
            for chunk in _pieces(request.stream):
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        name, is_text, content = (
                            _opened(event),
                            event.filename is None,
                            io.BytesIO(),
                        )
                    elif event is None:  # the part's end
                        (values if is_text else files).append((name, content.getvalue()))
                    else:
                        content.write(event)
                        if is_text:
                            _check_text_size(name, content.tell(), max_text)
    except ParserLimitReached as error:
        raise PayloadTooLarge(
            f"Invalid body: {_reason(error)} (at most {max_parts} parts, each with at most "
            f"{_HEADER_LINES} header lines of at most {_HEADER_LINE_BYTES} bytes)"
        ) from None
    except ParserError as error:
        raise BadRequest(
            f"Invalid body: not well-formed multipart/form-data: {_reason(error)}"
        ) from None
    return values, files


def _parser(request: Request, max_parts: int | None) -> PushMultipartParser:
    boundary = request.mimetype_params.get("boundary", "")
    if not _BOUNDARY.fullmatch(boundary):
        raise BadRequest(
            "Invalid body: the multipart boundary must be 1 to 200 of RFC 2046's boundary "
            "characters (letters, digits and '()+_,-./:=? )"
        )
    length = request.content_length
    return PushMultipartParser(
        boundary,
        content_length=-1 if length is None else length,
        max_header_size=_HEADER_LINE_BYTES,
        max_header_count=_HEADER_LINES,
        max_segment_count=float("inf") if max_parts is None else max_parts,
        strict=True,
    )


def _pieces(stream: IO[bytes]) -> Iterator[bytes]:
    """The body in pieces of about ``_CHUNK`` bytes, then ``b""`` for its end.

    A short last piece is given with the one before it: the strict parser refuses any byte
    after the closing delimiter that comes in a later piece, and the CRLF clients send after
    it must not land alone in a read of its own.
    """
    piece = _read(stream)
    while piece:
        following = _read(stream)
        if following and len(following) < _CHUNK:
            piece += following
            following = _read(stream)
        yield piece
        piece = following
    yield b""


def _read(stream: IO[bytes]) -> bytes:
    try:
        return stream.read(_CHUNK)
    except HTTPException:
        raise  # Werkzeug's own answers: over the size limit (413), the client went away (400)
    except Exception as error:  # noqa: BLE001 - whatever the server's reader raises on bad framing
        # gunicorn raises its own types on a body it cannot unframe (a bad chunk size, a
        # missing CRLF after a chunk); without this they were a 500.
        raise BadRequest(
            f"Invalid body: the request body could not be read ({type(error).__name__})"
        ) from None


def _opened(segment: MultipartSegment) -> str:
    """The part's name; a part that says twice what it is would read as two forms, one to
    whoever reads the first header (a proxy) and another to whoever reads the last."""
    dispositions = [value for key, value in segment.headerlist if key == "Content-Disposition"]
    if len(dispositions) > 1:
        raise BadRequest(
            "Invalid body: not well-formed multipart/form-data: a part has more than one "
            "Content-Disposition header"
        )
    return str(segment.name)


def _reason(error: Exception) -> str:
    """The library's message, without the Python objects it may carry along."""
    first = error.args[0] if error.args else None
    return first if isinstance(first, str) else type(error).__name__


def _check_text_size(name: str, size: int, limit: int | None) -> None:
    if limit is not None and size > limit:
        raise PayloadTooLarge(
            f"Invalid body: the text part {name!r} is larger than the limit of {limit} bytes"
        )
