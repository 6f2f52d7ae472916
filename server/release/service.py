"""The release service: idempotency and versions in SQLite, then the exporter pushes.

A release exists once its row is committed. The answer tells the truth about the remote:
success only once the release's commit is pushed, else a 503 that says it will be.
"""

from __future__ import annotations

import math
import time

from server.config import Config
from server.errors import AlreadyExistsDifferent
from server.errors import PushPending
from server.errors import PushRefused
from server.errors import QueueFull
from server.errors import ValidationError
from server.errors import from_repository
from server.faults import maybe_die
from server.models import EXISTS_IN_REPOSITORY
from server.models import ExportState
from server.models import Outcome
from server.models import ReleaseRequest
from server.models import ReleaseResult
from server.models import StoredRelease
from server.release import manifests
from server.repo.exporter import Exporter
from server.rules import MAX_VERSION
from server.store import Store
from server.store import utc_now

# Fields compared, in Kuberpult's order, when a release is sent again.
_COMPARED = ("source_commit_id", "source_author", "source_message", "display_version", "team")


class ReleaseService:
    """Creates releases: store first, then export, then answer."""

    def __init__(self, config: Config, store: Store, exporter: Exporter) -> None:
        self.config = config
        self.store = store
        self.exporter = exporter

    def create(self, request: ReleaseRequest) -> ReleaseResult:
        """Store ``request`` (or match it to the stored release) and wait for its push.

        :raises AlreadyExistsDifferent: same application and version, other content (409).
        :raises PushPending: stored, but not on the remote before the deadline (503).
        :raises KuberpultError: the repository refused it (TooOld 400, unsafe or invalid 409).
        """
        deadline = time.monotonic() + self.config.request_budget
        with self.store.transaction():
            existing = None
            if request.client_uuid is not None:
                # A resend (a retry after a timeout, a re-run CI job) is the same release,
                # whatever version it asks for or leaves to the server.
                existing = self.store.find_by_client_uuid(request.application, request.client_uuid)
            if existing is None and request.version is not None:
                existing = self.store.find_release(request.application, request.version)
            if existing is not None and existing.state == ExportState.FAILED:
                if self._differs(existing, request):
                    # A failed row never reached the repository: it must not turn a valid,
                    # different resend of its version into a 409.
                    self.store.delete_release_rows(existing.id)
                    existing = None
                else:
                    self.store.retry_failed(existing.id)
            if existing is not None:
                self._compare(existing, request)
                release_id, version = existing.id, existing.version
            else:
                pending = self.store.count_pending()
                if pending >= self.config.max_queue:
                    raise QueueFull(
                        f"{pending} releases are waiting for a push to the manifest repository "
                        f"(limit KUBERPULT_MAX_QUEUE={self.config.max_queue}); nothing was "
                        "stored, try again later",
                        retry_after=max(1, math.ceil(self.config.recovery_interval or 5)),
                    )
                version = request.version or self._next_version(request.application)
                self.store.save_application(request.application, request.team)
                release_id = self.store.insert_release(
                    self._row(request, version), request.manifests
                )
        maybe_die(self.config, "after-sqlite-commit")
        outcome = Outcome.ALREADY_EXISTS_SAME if existing else Outcome.CREATED
        if existing is not None and existing.state == ExportState.PUSHED:
            return ReleaseResult(outcome, request.application, version, existing.commit_sha)

        report = self.exporter.export_until(self.store, release_id, deadline)
        stored = self.store.release_outcome(release_id)
        if stored.state == ExportState.PUSHED:
            return ReleaseResult(outcome, request.application, version, stored.commit_sha)
        if stored.state == ExportState.FAILED:
            if stored.error_code in ("too_old", "forbidden", EXISTS_IN_REPOSITORY):
                # Refused before it reached the repository: forget it, as for any bad input.
                self.store.delete_release(stored.id)
            if stored.error_code == EXISTS_IN_REPOSITORY:
                # The repository's own release under that number takes its place.
                self.exporter.adopt(self.store, deadline)
            raise from_repository(stored.error_code or "", stored.error or "not written")
        if report.rejected:
            raise PushRefused(
                f"the manifest repository refused the push ({report.error}); release {version} "
                f"of {request.application!r} is stored and will be pushed once the remote "
                "accepts it"
            )
        retry_after = max(1, math.ceil(self.config.recovery_interval or 5))
        raise PushPending(
            request.application,
            version,
            report.error or "the push is still in progress",
            retry_after,
        )

    def _next_version(self, application: str) -> int:
        highest = self.store.highest_version(application) or 0
        if highest >= MAX_VERSION:
            raise ValidationError("version", f"{application!r} has no version numbers left")
        return highest + 1

    def _row(self, request: ReleaseRequest, version: int) -> dict[str, object]:
        return {
            "application": request.application,
            "version": version,
            "source_commit_id": request.source_commit_id,
            "previous_commit_id": request.previous_commit_id,
            "source_author": request.source_author,
            "source_message": request.source_message,
            "display_version": request.display_version,
            "team": request.team,
            "ci_link": request.ci_link,
            "author_name": request.author_name or self.config.git_author_name,
            "author_email": request.author_email or self.config.git_author_email,
            "created_at": utc_now(),
            "requester": request.requester,
            "client_uuid": request.client_uuid,
        }

    def _differs(self, existing: StoredRelease, request: ReleaseRequest) -> bool:
        try:
            self._compare(existing, request)
        except AlreadyExistsDifferent:
            return True
        return False

    def _compare(self, existing: StoredRelease, request: ReleaseRequest) -> None:
        """Raise ``AlreadyExistsDifferent`` on the first supplied field that differs."""
        for name in _COMPARED:
            new = getattr(request, name)
            old = getattr(existing, name)
            if name == "team" and old is None:
                old = self.store.application_team(existing.application)
            if new is not None and new != old:
                diff = manifests.unified_diff(old or "", new, "existing", "request")
                raise AlreadyExistsDifferent(name, diff)
        for env, content in sorted(request.manifests.items()):
            stored = existing.manifests.get(env)
            if stored is None or not manifests.same_yaml(stored, content):
                diff = manifests.unified_diff(
                    (stored or b"").decode(),
                    content.decode(),
                    f"{env}-existing",
                    f"{env}-request",
                )
                raise AlreadyExistsDifferent("manifests", diff)
