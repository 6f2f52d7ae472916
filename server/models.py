"""Plain data passed between the layers: what a request asks for, what the store holds."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from dataclasses import field
from typing import Protocol


class EditPermissions(Protocol):
    """What the caller of an edit may do, decided on the tree the edit is applied to (the
    environment groups come from its configs). Built by ``server.auth``, used by
    ``server.release``: neither imports the other."""

    def check_environment(
        self, action: str, environment: str, group: str, application: str | None = None
    ) -> None:
        """:raises Forbidden: the caller may not do ``action`` (RBAC's names) there."""

    def application_refusal(self, environment: str, application: str, team: str) -> str | None:
        """Why the caller may not move ``application`` (of ``team``) in ``environment``, or
        None when it may: a release train skips such an application, a deploy is refused."""


@dataclass(frozen=True)
class ReleaseRequest:
    """A validated release request: every name in it is safe to use in a path."""

    application: str
    manifests: dict[str, bytes]
    version: int | None = None
    signatures: dict[str, list[bytes]] = field(default_factory=dict)
    source_commit_id: str | None = None
    previous_commit_id: str | None = None
    source_author: str | None = None
    source_message: str | None = None
    display_version: str | None = None
    team: str | None = None
    ci_link: str | None = None
    author_name: str | None = None
    author_email: str | None = None
    #: The verified caller whose permissions the exporter checks again (JSON), if any.
    requester: str | None = None
    #: Kuberpult's ``client-uuid`` header: a resend with it finds its release.
    client_uuid: str | None = None


#: The error code of a release whose number the repository already holds with other content
#: (someone else wrote it); the release is refused, and the repository's one is adopted.
EXISTS_IN_REPOSITORY = "exists_in_repository"


class ExportState(enum.StrEnum):
    """Where a stored release is on its way to the remote."""

    PENDING = "pending"
    PUSHED = "pushed"
    FAILED = "failed"


@dataclass(frozen=True)
class StoredRelease:
    """A release row with its manifests, as the store returns it."""

    id: int
    application: str
    version: int
    manifests: dict[str, bytes]
    created_at: str
    author_name: str
    author_email: str
    state: ExportState
    source_commit_id: str | None = None
    previous_commit_id: str | None = None
    source_author: str | None = None
    source_message: str | None = None
    display_version: str | None = None
    team: str | None = None
    ci_link: str | None = None
    commit_sha: str | None = None
    error: str | None = None
    error_code: str | None = None
    removed_from_repo_at: str | None = None
    pushed_at: str | None = None
    requester: str | None = None
    client_uuid: str | None = None


class Outcome(enum.Enum):
    """How a release request ended, when it did not end in an error."""

    CREATED = "Success"
    ALREADY_EXISTS_SAME = "AlreadyExistsSame"


@dataclass(frozen=True)
class ReleaseResult:
    """The answer of the release service: the outcome and where the release landed."""

    outcome: Outcome
    application: str
    version: int
    commit_sha: str | None


@dataclass(frozen=True)
class FoundRelease:
    """A release read back from the manifest repository's files (see repo.adoption)."""

    application: str
    version: int
    manifests: dict[str, bytes]
    created_at: str | None
    team: str | None
    texts: dict[str, str]
