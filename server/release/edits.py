"""Edits to the manifest repository that are not releases: locks and environments.

They are applied synchronously under the same repo lock as releases and answered only once
pushed; when the push fails nothing was changed and the caller gets a 503 to retry.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from server import rules
from server.config import Config
from server.errors import Unavailable
from server.errors import ValidationError
from server.errors import from_repository
from server.models import EditPermissions
from server.repo.environments import config_path
from server.repo.environments import read_config
from server.repo.environments import render_config
from server.repo.exporter import EditNotPushed
from server.repo.exporter import Exporter
from server.repo.layout import Change
from server.repo.layout import deployment_dir
from server.repo.safe_tree import ApplyError
from server.repo.safe_tree import Parts
from server.repo.safe_tree import SafeTree
from server.repo.safe_tree import changed
from server.rules import LOCK_ID
from server.store import Store
from server.store import utc_now

_LIFETIME = re.compile(r"[1-9][0-9]*[hdw]")


class UnknownEnvironment(ApplyError):
    """The environment has no directory in the manifest repository."""

    code = "unknown_environment"


@dataclass(frozen=True)
class LockTarget:
    """What a lock locks: an environment, an application in it, or a team in it."""

    environment: str
    application: str | None = None
    team: str | None = None

    def directory(self, lock_id: str) -> Parts:
        """The lock's directory in the repository (Kuberpult's layout)."""
        if self.application:
            return (*deployment_dir(self.environment, self.application), "locks", lock_id)
        if self.team:
            return ("environments", self.environment, "teams", self.team, "locks", lock_id)
        return ("environments", self.environment, "locks", lock_id)

    def describe(self, lock_id: str) -> str:
        """The lock in words, for commit messages and errors."""
        text = f'lock "{lock_id}" on environment "{self.environment}"'
        if self.application:
            text += f' for application "{self.application}"'
        if self.team:
            text += f' for team "{self.team}"'
        return text


@dataclass(frozen=True)
class LockRequest:
    """A validated request to create a lock."""

    target: LockTarget
    lock_id: str
    message: str
    ci_link: str | None = None
    suggested_lifetime: str | None = None


def lock_target(
    environment: str, application: str | None = None, team: str | None = None
) -> LockTarget:
    """Validate the names of a lock's target (they become paths)."""
    rules.environment(environment)
    if application is not None:
        rules.application(application)
    if team is not None:
        rules.team(team)
    return LockTarget(environment, application, team)


def lock_id(value: str) -> str:
    """Return ``value`` if it is a valid lock id (it becomes a directory name)."""
    if not LOCK_ID.fullmatch(value) or ".." in value:
        raise ValidationError(
            "lockId",
            f"lock id {value!r} is invalid: 1 to 100 of A-Z a-z 0-9 . _ -, not starting with "
            "'.' or '-'",
        )
    return value


def lock_request(target: LockTarget, raw_id: str, body: object) -> LockRequest:
    """Validate a lock's JSON body ``{"message", "ciLink"?, "suggestedLifeTime"?}``."""
    if not isinstance(body, dict):
        raise ValidationError("body", 'the body must be a JSON object like {"message": "..."}')
    unknown = sorted(set(body) - {"message", "ciLink", "suggestedLifeTime"})
    if unknown:
        raise ValidationError(unknown[0], f"unknown field {unknown[0]!r} in the lock body")
    message, ci_link, lifetime = (body.get(k) for k in ("message", "ciLink", "suggestedLifeTime"))
    for name, value in (("message", message), ("ciLink", ci_link), ("suggestedLifeTime", lifetime)):
        if value is not None and not isinstance(value, str):
            raise ValidationError(name, f"{name} must be a string")
    rules.limited_text("message", message or "", 4096)
    if lifetime and not _LIFETIME.fullmatch(lifetime):
        raise ValidationError("suggestedLifeTime", "suggestedLifeTime must look like 12h, 3d or 2w")
    return LockRequest(
        target=target,
        lock_id=lock_id(raw_id),
        message=message or "",
        ci_link=rules.ci_link(ci_link) if ci_link else None,
        suggested_lifetime=lifetime or None,
    )


#: An edit: applied to the working tree under the repository lock, it returns what changed.
Edit = Callable[[SafeTree], Change]


class RepositoryEdits:
    """Runs edits that are not releases (locks, environments, promotions) through the
    exporter: one commit each, answered once pushed."""

    def __init__(self, config: Config, exporter: Exporter, store: Store) -> None:
        self.config = config
        self.exporter = exporter
        self.store = store

    def run(self, edit: Edit, author: tuple[str, str]) -> str | None:
        """Apply, commit and push ``edit``; the new commit, or None when nothing changed.

        :raises KuberpultError: the edit was refused (its own error) or not pushed (503);
            ``EditPending`` (503) when its push goes on past the request's deadline.
        """
        deadline = time.monotonic() + self.config.request_budget
        try:
            return self.exporter.run_edit(self.store, edit, author, deadline)
        except ApplyError as error:
            raise from_repository(error.code, str(error)) from None
        except EditNotPushed as error:
            raise Unavailable(
                f"not changed: the manifest repository push failed: {error}"
            ) from None

    def create_lock(
        self, request: LockRequest, author: tuple[str, str], permissions: EditPermissions
    ) -> str | None:
        """Write the lock's directory and push; None when an identical lock already exists."""
        target = request.target

        def edit(tree: SafeTree) -> Change:
            require_environment(tree, target.environment)
            group = read_config(tree, target.environment).group
            permissions.check_environment(
                "CreateLock", target.environment, group, target.application
            )
            return write_lock(tree, request, author)

        return self.run(edit, author)

    def delete_lock(
        self,
        target: LockTarget,
        raw_id: str,
        author: tuple[str, str],
        permissions: EditPermissions,
    ) -> str | None:
        """Remove the lock's directory and push; None when there was no such lock."""
        lock = lock_id(raw_id)

        def edit(tree: SafeTree) -> Change:
            group = read_config(tree, target.environment).group
            permissions.check_environment(
                "DeleteLock", target.environment, group, target.application
            )
            return remove_lock(tree, target, lock)

        return self.run(edit, author)

    def create_environment(
        self,
        name: str,
        *,
        upstream_latest: bool = False,
        upstream: str | None = None,
        group: str | None = None,
        author: tuple[str, str],
    ) -> str | None:
        """Write ``environments/<name>/config.json`` and push; None when it is unchanged."""
        rules.environment(name)
        if upstream is not None:
            rules.environment(upstream)
        if group is not None:
            rules.environment(group)
        content = render_config(upstream_latest=upstream_latest, upstream=upstream, group=group)

        def edit(tree: SafeTree) -> Change:
            paths = changed(tree.write(config_path(name), content))
            return Change(messages=[f'create environment "{name}"'], paths=paths)

        return self.run(edit, author)


def write_lock(tree: SafeTree, request: LockRequest, author: tuple[str, str]) -> Change:
    """Write a lock's files (Kuberpult's layout); no change when the same lock exists."""
    target, lock = request.target, request.lock_id
    base = target.directory(lock)
    files = {
        "message": request.message,
        "created_by_name": author[0],
        "created_by_email": author[1],
    }
    if request.ci_link:
        files["ci_link"] = request.ci_link
    if request.suggested_lifetime:
        files["suggested_lifetime"] = request.suggested_lifetime
    same_message = tree.read((*base, "message")) == request.message.encode()
    if same_message and tree.read((*base, "created_at")) is not None:
        return Change()  # the same lock again: nothing to do
    paths = changed(*(tree.write((*base, name), value.encode()) for name, value in files.items()))
    paths += changed(tree.write((*base, "created_at"), utc_now().encode()))
    return Change(messages=[f"Created {target.describe(lock)}"], paths=paths)


def remove_lock(tree: SafeTree, target: LockTarget, lock: str) -> Change:
    """Remove a lock's directory; no change when there is no such lock."""
    removed = tree.remove(target.directory(lock))
    if removed is None:
        return Change()
    return Change(messages=[f"Deleted {target.describe(lock)}"], paths=[removed])


def require_environment(tree: SafeTree, environment: str) -> None:
    if not tree.is_dir(("environments", environment)):
        raise UnknownEnvironment(
            f"environment {environment!r} does not exist in the manifest repository "
            f"(no environments/{environment}/)"
        )
