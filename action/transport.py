"""HTTP for the client and the Action with the standard library only: the Action runs without
installing anything (its overhead is a Python start, git and gpg), and the client keeps one
code path.

No redirect is followed (as Kuberpult's client); every answer, 2xx or not, comes back as a
``Response``; only failures to get an answer raise ``TransportError``.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from urllib.parse import urlsplit

FileParts = list[tuple[str, tuple[str | None, bytes]]]


class TransportError(Exception):
    """No answer: the connection failed, timed out or broke."""


class Headers(dict[str, str]):
    """Response headers, looked up without regard to case (as HTTP means them)."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__((key.lower(), value) for key, value in items)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass(frozen=True)
class Response:
    """A server's answer, whatever its status."""

    status: int
    reason: str
    body: str
    headers: Headers


class InvalidRequest(ValueError):
    """The request cannot be sent as asked (a URL that is not http(s), a header value HTTP
    cannot carry): retrying would not help."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx comes back as an answer


def _opener() -> urllib.request.OpenerDirector:
    """http(s) only (no file:, ftp:, data:), proxies from the environment, no redirects, and
    the CA bundle a requests user may have configured."""
    cafile = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=cafile)),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        _NoRedirects(),
    ):
        opener.add_handler(handler)
    return opener


def _check(url: str, headers: dict[str, str]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"the URL {url!r} is not an http(s) URL with a host")
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            raise InvalidRequest(f"the {name} header must be one line")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidRequest(
                f"the {name} header holds characters HTTP headers cannot carry (only Latin-1)"
            ) from None
    proxy = urllib.request.getproxies().get(parts.scheme)
    if (
        proxy
        and not urllib.request.proxy_bypass(parts.hostname)
        and ("Proxy-Authorization" in headers)
    ):
        # A proxy takes Proxy-Authorization for itself: the IAP token would go to it.
        raise InvalidRequest(
            f"KUBERPULT_IAP_TOKEN is sent as Proxy-Authorization, which the proxy {proxy!r} "
            f"would receive instead of the server; exempt {parts.hostname} in no_proxy"
        )


def multipart(parts: FileParts) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type (text parts without a file name)."""
    boundary = uuid.uuid4().hex
    chunks: list[bytes] = []
    for name, (filename, content) in parts:
        disposition = f'form-data; name="{_quoted(name)}"'
        if filename is not None:
            disposition += f'; filename="{_quoted(filename)}"'
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if filename is not None:
            head += "Content-Type: application/octet-stream\r\n"
        chunks += [head.encode(), b"\r\n", content, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    files: FileParts | None = None,
    json_body: Any = None,
    form: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    timeout: float = 180.0,
) -> Response:
    """One HTTP request. :raises TransportError: when no answer came."""
    headers = dict(headers or {})
    data: bytes | None = None
    if files is not None:
        data, headers["Content-Type"] = multipart(files)
    elif json_body is not None:
        data = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    elif form is not None:
        data = urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if params:
        url += ("&" if "?" in url else "?") + urlencode(params)
    headers.setdefault("User-Agent", "kuberpult-lite-client")
    _check(url, headers)
    prepared = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - http(s) only, checked above
    try:
        with _opener().open(prepared, timeout=timeout) as answer:
            return _response(answer.status, answer.reason, answer.read(), answer.headers)
    except urllib.error.HTTPError as error:
        with error:
            try:
                body = error.read()
            except (http.client.HTTPException, OSError) as broken:
                raise TransportError(f"the answer {error.code} broke off: {broken}") from None
            return _response(error.code, str(error.reason), body, error.headers)
    except urllib.error.URLError as error:
        raise TransportError(f"{type(error.reason).__name__}: {error.reason}") from None
    except (http.client.HTTPException, OSError) as error:
        raise TransportError(f"{type(error).__name__}: {error}") from None


def _response(status: int, reason: str, body: bytes, headers: Any) -> Response:
    return Response(status, reason or "", body.decode("utf-8", "replace"), Headers(headers.items()))
