"""Talking to a kuberpult(-lite) server: the release request, auth headers, and retries.

Shared by the ``kuberpult-client`` command line and the GitHub Action. Unlike Kuberpult's Go
client, the body is rebuilt for every attempt, the timeout is honoured, and only failures that
may pass (network errors, 408, 429, 5xx) are retried, with backoff and ``Retry-After``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import quote
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from action import transport
from action.transport import FileParts
from action.transport import Headers

RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 120.0


class RequestFailed(Exception):
    """No attempt succeeded; ``answer`` is the last server answer, if there was one."""

    def __init__(self, message: str, answer: Answer | None = None) -> None:
        super().__init__(message)
        self.answer = answer


@dataclass(frozen=True)
class Connection:
    """Where the server is and how to talk to it (Kuberpult's global flags and tokens)."""

    url: str
    author_name: str | None = None
    author_email: str | None = None
    client_uuid: str | None = None
    retries: int = 3
    timeout: float = 180.0
    dex_token: str | None = None
    iap_token: str | None = None

    def endpoint(self, path: str) -> str:
        """``path`` joined to the URL, keeping any path prefix and query (Go's JoinPath)."""
        parts = urlsplit(self.url)
        joined = parts.path.rstrip("/") + "/" + path.lstrip("/")
        return urlunsplit((parts.scheme, parts.netloc, joined, parts.query, ""))

    def headers(self, *, authors: bool = True, uuid: bool = False) -> dict[str, str]:
        """Kuberpult's request headers: tokens, base64 author headers, client uuid."""
        headers: dict[str, str] = {}
        if self.iap_token is not None:
            headers["Proxy-Authorization"] = f"Bearer {self.iap_token}"
        if self.dex_token is not None:
            headers["Authorization"] = f"Bearer {self.dex_token}"
        if authors and self.author_name is not None:
            headers["author-name"] = base64.b64encode(self.author_name.encode()).decode()
        if authors and self.author_email is not None:
            headers["author-email"] = base64.b64encode(self.author_email.encode()).decode()
        if uuid and self.client_uuid is not None:
            headers["client-uuid"] = self.client_uuid
        return headers


@dataclass(frozen=True)
class Release:
    """What one release sends: the fields of Kuberpult's multipart request."""

    application: str
    manifests: dict[str, bytes]
    signatures: dict[str, bytes] = field(default_factory=dict)
    team: str | None = None
    source_commit_id: str | None = None
    previous_commit_id: str | None = None
    source_author: str | None = None
    source_message: str | None = None
    version: int | None = None
    revision: int | None = None
    display_version: str | None = None
    ci_link: str | None = None
    prepublish: bool = False

    def parts(self) -> FileParts:
        """The multipart parts in the Go client's order and with its file names."""
        parts: FileParts = [("application", (None, self.application.encode()))]
        for env, content in self.manifests.items():
            parts.append((f"manifests[{env}]", (f"{env}-manifest", content)))
        for env, signature in self.signatures.items():
            parts.append((f"signatures[{env}]", (f"{env}-signature", signature)))
        for name in (
            "team",
            "source_commit_id",
            "previous_commit_id",
            "source_author",
            "source_message",
            "version",
            "revision",
            "display_version",
            "ci_link",
        ):
            value = getattr(self, name)
            if value is not None:
                parts.append((name, (None, str(value).encode())))
        if self.prepublish:
            parts.append(("is_prepublish", (None, b"true")))
        return parts


@dataclass(frozen=True)
class Answer:
    """The server's answer to the successful (or last) attempt."""

    status: int
    reason: str
    body: str
    headers: Headers

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def send(
    connection: Connection,
    method: str,
    path: str,
    *,
    files: Callable[[], FileParts] | None = None,
    json_body: Any = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    retry: bool = True,
    log: Callable[[str], None] = lambda line: None,
    sleep: Callable[[float], None] = time.sleep,
) -> Answer:
    """Send a request, retrying what may pass; return the 2xx answer.

    ``files`` is called for every attempt, so each one carries the whole body.
    :raises RequestFailed: after the last attempt, or at once for an answer retrying cannot fix.
    """
    url = connection.endpoint(path)
    attempts = connection.retries + 1 if retry else 1
    last: Answer | None = None
    for attempt in range(1, attempts + 1):
        log(f"attempt {attempt}/{attempts}: {method} {url}")
        wait = _backoff(attempt)
        try:
            response = transport.request(
                method,
                url,
                files=files() if files else None,
                json_body=json_body,
                params=params,
                headers=headers,
                timeout=connection.timeout,
            )
        except transport.InvalidRequest as error:
            raise RequestFailed(f"the request cannot be sent: {error}") from None
        except transport.TransportError as error:
            log(f"error issuing the HTTP request: {error}")
        else:
            last = Answer(response.status, response.reason, response.body, response.headers)
            if 200 <= response.status < 300:
                return last
            log(
                f"Received response code {response.status} - {response.reason} "
                f"from the server\nResponse body:\n{response.body.rstrip()}"
            )
            if response.status not in RETRYABLE:
                raise RequestFailed(_refusal(last), last)
            wait = _retry_after(response.headers.get("Retry-After"), wait)
        if attempt < attempts:
            log(f"Retrying in {wait:g}s...")
            sleep(wait)
    raise RequestFailed(
        f"could not perform a successful call to the server after {attempts} attempt(s)", last
    )


def release_train(
    connection: Connection,
    target: str,
    *,
    group: bool,
    team: str | None,
    ci_link: str | None,
    log: Callable[[str], None],
) -> Answer:
    """A release train into ``target`` (an environment, or with ``group`` an environment
    group), as Kuberpult's client sends it. :raises RequestFailed: see ``send``."""
    kind = "environment-groups" if group else "environments"
    return send(
        connection,
        "PUT",
        f"api/{kind}/{quote(target, safe='')}/releasetrain",
        params={"team": team} if team else None,
        json_body={"ciLink": ci_link} if ci_link else None,
        headers=connection.headers(uuid=True),
        log=log,
    )


def _backoff(attempt: int) -> float:
    return float(min(2 ** (attempt - 1), MAX_BACKOFF))


def _retry_after(value: str | None, default: float) -> float:
    if value and value.strip().isdigit():
        return min(float(value.strip()), MAX_RETRY_AFTER)
    return default


def _refusal(answer: Answer) -> str:
    body = answer.json()
    message = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
    if 300 <= answer.status < 400:
        message = f"redirect to {answer.headers.get('Location', '?')} not followed"
    return f"the server answered {answer.status}: {message or answer.body.strip() or answer.reason}"
