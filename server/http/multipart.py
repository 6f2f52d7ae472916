"""Multipart parts as raw bytes: text parts are not decoded by Werkzeug.

Werkzeug decodes a text part (one without a filename) with ``errors="replace"``, so invalid
UTF-8 would silently become U+FFFD while the same bytes in a file part are refused. Here a text
part keeps its bytes, and ``form.parse_release`` applies the one UTF-8 rule to both kinds.
The request's limits (``MAX_CONTENT_LENGTH``, ``MAX_FORM_MEMORY_SIZE``, ``MAX_FORM_PARTS``)
apply unchanged: the parsing is Werkzeug's own.
"""

from __future__ import annotations

import typing as t

from flask import Request
from werkzeug.datastructures import Headers
from werkzeug.datastructures import MultiDict
from werkzeug.formparser import FormDataParser
from werkzeug.formparser import MultiPartParser

Parts = list[tuple[str, bytes]]


class _BytesMultiPartParser(MultiPartParser):
    def get_part_charset(self, headers: Headers) -> str:
        # Latin-1 maps each byte to one character and back, whatever charset the part
        # declares, so the text can be turned back into the very bytes that were sent.
        return "latin-1"

    def parse(
        self, stream: t.IO[bytes], boundary: bytes, content_length: int | None
    ) -> tuple[MultiDict[str, t.Any], MultiDict[str, t.Any]]:
        fields, files = super().parse(stream, boundary, content_length)
        raw = [(name, value.encode("latin-1")) for name, value in fields.items(multi=True)]
        return self.cls(raw), files


class BytesFormDataParser(FormDataParser):
    """Werkzeug's form parser, but multipart text parts are ``bytes``, not decoded text."""

    def parse(
        self,
        stream: t.IO[bytes],
        mimetype: str,
        content_length: int | None,
        options: dict[str, str] | None = None,
    ) -> tuple[t.IO[bytes], MultiDict[str, t.Any], MultiDict[str, t.Any]]:
        if mimetype != "multipart/form-data":
            return super().parse(stream, mimetype, content_length, options)
        parser = _BytesMultiPartParser(
            stream_factory=self.stream_factory,
            max_form_memory_size=self.max_form_memory_size,
            max_form_parts=self.max_form_parts,
            cls=self.cls,
        )
        try:  # as FormDataParser._parse_multipart does
            boundary = (options or {}).get("boundary", "").encode("ascii")
            if not boundary:
                raise ValueError("Missing boundary")
            form, files = parser.parse(stream, boundary, content_length)
        except ValueError:
            if not self.silent:
                raise
            return stream, self.cls(), self.cls()
        return stream, form, files


def raw_parts(request: Request) -> tuple[Parts, Parts]:
    """The text parts and the file parts of a multipart request, both as bytes, in order.

    Must be the first to read the request's form: it makes this request parse text parts
    as bytes (no other view is affected).
    """
    request.form_data_parser_class = BytesFormDataParser
    form = t.cast("MultiDict[str, object]", request.form)
    values: Parts = []
    for name, items in form.lists():
        for value in items:
            if not isinstance(value, bytes):
                raise RuntimeError("the request's form was read before raw_parts")
            values.append((name, value))
    files = [(name, storage.read()) for name, items in request.files.lists() for storage in items]
    return values, files
