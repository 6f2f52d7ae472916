"""Argo CD's webhook after a push: a GitHub-style push event to ``<server>/api/webhook``, so Argo
CD refreshes the applications whose files changed at once instead of at its next poll.

As Kuberpult v4 sent it (``X-GitHub-Event: push``, one commit listing the changed manifests),
and beyond it: signed with ``X-Hub-Signature-256`` (and ``X-Hub-Signature``) when a secret is
configured (Argo CD's ``webhook.github.secret`` checks it), sent only after a push that
succeeded, with a timeout, retried a few times in the background on 5xx and network errors,
never delaying or failing a release, and counted in /metrics.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from server import metrics

log = logging.getLogger("kuberpult.webhook")

ATTEMPTS = 3
TIMEOUT = 5.0
BACKOFF = 0.5

_MANIFEST = re.compile(r"environments/[^/]+/applications/[^/]+/manifests/manifests\.yaml")
_ARGOCD_FILE = re.compile(r"argocd/v1alpha1/[^/]+\.yaml")
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?([^:/]+):(.+?)(?:\.git)?/?$")


def web_url(git_url: str) -> str:
    """The repository's web address Argo CD matches against its applications' repoURL,
    derived from the remote when ``KUBERPULT_GIT_WEB_URL`` is not set."""
    if git_url.startswith(("https://", "http://")):
        return re.sub(r"\.git/?$", "", git_url)
    if git_url.startswith("ssh://"):
        rest = git_url.removeprefix("ssh://").split("@", 1)[-1]
        host, _, path = rest.partition("/")
        return f"https://{host.split(':', 1)[0]}/{re.sub(r'.git/?$', '', path)}"
    match = _SCP_LIKE.match(git_url)
    if match and not git_url.startswith("/"):
        return f"https://{match.group(1)}/{match.group(2)}"
    return git_url


@dataclass(frozen=True)
class WebhookSettings:
    """Where to send, as what repository, signed with what."""

    server: str
    html_url: str
    branch: str
    secret: bytes | None = None
    insecure: bool = False


def payload(
    settings: WebhookSettings,
    before: str | None,
    after: str,
    modified: list[str],
    removed: list[str],
) -> dict[str, Any]:
    """The push event: the fields Argo CD reads, in GitHub's shape."""
    commit = {"added": [], "modified": modified, "removed": removed, "id": after}
    return {
        "ref": f"refs/heads/{settings.branch}",
        "before": before or "",
        "after": after,
        "created": before is None,
        "deleted": False,
        "forced": False,
        "commits": [commit],
        "head_commit": commit,
        "repository": {
            "html_url": settings.html_url,
            "default_branch": settings.branch,
        },
    }


def changed_files(paths: list[str], exists: Any) -> tuple[list[str], list[str]]:
    """The manifests and Argo CD files among ``paths``: (modified, removed)."""
    wanted = sorted({p for p in paths if _MANIFEST.fullmatch(p) or _ARGOCD_FILE.fullmatch(p)})
    return [p for p in wanted if exists(p)], [p for p in wanted if not exists(p)]


class Webhook:
    """Sends push events in a background thread; never raises into the exporter."""

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings

    def after_push(
        self, before: str | None, after: str, modified: list[str], removed: list[str]
    ) -> threading.Thread | None:
        """Queue the event of one successful push; nothing to send when no file Argo CD
        reads changed."""
        if not modified and not removed:
            return None
        body = json.dumps(payload(self.settings, before, after, modified, removed)).encode()
        thread = threading.Thread(target=self._send, args=(body,), daemon=True, name="webhook")
        thread.start()
        return thread

    def _request(self, body: bytes) -> urllib.request.Request:
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "User-Agent": "kuberpult-lite",
        }
        if self.settings.secret:
            sha256 = hmac.new(self.settings.secret, body, hashlib.sha256).hexdigest()
            sha1 = hmac.new(self.settings.secret, body, hashlib.sha1).hexdigest()
            headers["X-Hub-Signature-256"] = f"sha256={sha256}"
            headers["X-Hub-Signature"] = f"sha1={sha1}"
        url = self.settings.server.rstrip("/") + "/api/webhook"
        return urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - an http(s) URL checked at start-up

    def _send(self, body: bytes) -> None:
        context = None
        if self.settings.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        error = "no attempt"
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with urllib.request.urlopen(  # noqa: S310 - see _request
                    self._request(body), timeout=TIMEOUT, context=context
                ) as answer:
                    answer.read(65536)
                metrics.WEBHOOKS.labels("sent").inc()
                return
            except urllib.error.HTTPError as failure:
                error = f"HTTP {failure.code}"
                if failure.code < 500:
                    # Argo CD refused it (a wrong secret, a disabled webhook): retrying the
                    # same body cannot help.
                    metrics.WEBHOOKS.labels("refused").inc()
                    log.warning("Argo CD refused the webhook: %s", error)
                    return
            except (OSError, ValueError) as failure:
                error = str(failure)
            if attempt < ATTEMPTS:
                time.sleep(BACKOFF * 2 ** (attempt - 1))
        metrics.WEBHOOKS.labels("failed").inc()
        log.warning("could not send the webhook to Argo CD after %d attempts: %s", ATTEMPTS, error)
