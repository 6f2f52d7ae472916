"""After the release: deploys of one version, group locks, deleting an environment (release
trains are in ``trains.py``). Each is an edit of the working tree, run by ``RepositoryEdits``
under the repository lock (one commit, answered once pushed) and decided on that very tree.

Over 250 lines: the three edits share the readings of the tree (names, teams, locks, group
members) that trains use too; one module keeps each reading in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from server import rules
from server.errors import Forbidden
from server.errors import ValidationError
from server.models import EditPermissions
from server.release.edits import Edit
from server.release.edits import LockRequest
from server.release.edits import LockTarget
from server.release.edits import remove_lock
from server.release.edits import require_environment
from server.release.edits import write_lock
from server.repo import argocd
from server.repo import layout
from server.repo.environments import read_config
from server.repo.layout import Change
from server.repo.safe_tree import ApplyError
from server.repo.safe_tree import SafeTree
from server.store import Store
from server.store import utc_now

LOCK_BEHAVIORS = ("record", "fail", "ignore")


class UnknownTarget(ApplyError):
    """No environment (or no member of the group) by that name in the repository."""

    code = "unknown_environment_group"


class Locked(ApplyError):
    """A deploy with ``lockBehavior: fail`` met a lock."""

    code = "locked"


class EnvironmentInUse(ApplyError):
    """An environment cannot be deleted while something still depends on it."""

    code = "environment_in_use"


def name(field_name: str, value: str) -> str:
    """An environment, group or team name from a URL or query: Kuberpult's name rule."""
    if len(value) > rules.MAX_ENVIRONMENT or not rules.NAME.fullmatch(value):
        raise ValidationError(
            field_name,
            f"{field_name} {value!r} is invalid: it must be 1 to {rules.MAX_ENVIRONMENT} "
            f"characters and match {rules.NAME_PATTERN}",
        )
    return value


def quoted(text: str) -> str:
    """Go's ``%q`` for the names that reach these messages."""
    return json.dumps(text, ensure_ascii=False)


def team_of(tree: SafeTree, application: str) -> str:
    """The raw content of the application's team file (Kuberpult compares it untrimmed)."""
    content = tree.read(("applications", application, "team")) or b""
    return content.decode("utf-8", "replace")


def has_entries(tree: SafeTree, *parts: str) -> bool:
    return any(tree.is_dir((*parts, entry)) for entry in tree.list(parts))


def applications(tree: SafeTree, environment: str) -> list[str]:
    directory = ("environments", environment, "applications")
    return sorted(app for app in tree.list(directory) if tree.is_dir((*directory, app)))


def group_members(tree: SafeTree, group: str) -> list[str]:
    """The environments whose config names ``group`` as their ``environmentGroup``."""
    return [
        env
        for env in sorted(tree.list(("environments",)))
        if tree.is_dir(("environments", env)) and read_config(tree, env).environment_group == group
    ]


@dataclass
class DeployOutcome:
    """Whether a deploy deployed or queued its version."""

    queued: bool = False


def deploy(
    environment: str,
    application: str,
    version: int,
    lock_behavior: str,
    permissions: EditPermissions,
    author: tuple[str, str],
    outcome: DeployOutcome,
) -> Edit:
    """The edit of a deploy of one version that is already in the repository."""

    def edit(tree: SafeTree) -> Change:
        outcome.queued = False
        require_environment(tree, environment)
        config = read_config(tree, environment)
        permissions.check_environment("DeployRelease", environment, config.group, application)
        team = team_of(tree, application)
        refusal = permissions.application_refusal(environment, application, team)
        if refusal is not None:
            raise Forbidden(
                f"PermissionDenied may not deploy {application!r} to {environment!r}: {refusal}"
            )
        if layout.release_manifest(tree, application, version, environment) is None:
            raise layout.MissingRelease(
                f"release {version} of {application!r} has no manifest for environment "
                f"{environment!r} in the manifest repository"
            )
        here = layout.deployment_dir(environment, application)
        if layout.deployed_version(tree, environment, application) == version and (
            tree.read_symlink((*here, "queued_version")) is None
        ):
            return Change()  # already so: no commit just to touch deployed_at_utc
        lock = None
        if lock_behavior != "ignore":
            lock = layout.find_lock(tree, environment, application, team.strip() or None)
        if lock is not None:
            if lock_behavior == "fail":
                raise Locked(
                    f"locked: the {lock[0]} lock on environment {environment!r} blocks the "
                    f"deploy ({lock[1]!r}); send lockBehavior 'record' to queue it, or "
                    "'ignore' to deploy anyway"
                )
            outcome.queued = True
            paths = [
                p for p in [layout.queue_version(tree, application, version, environment)] if p
            ]
            message = f'Queued version {version} of app "{application}" in env "{environment}"'
            return Change(messages=[message], paths=paths)
        paths = layout.deploy_version(tree, application, version, environment, author, utc_now())
        message = f'deployed version {version} of "{application}" to "{environment}"'
        return Change(messages=[message], paths=paths)

    return edit


def group_lock(
    group: str,
    lock: LockRequest | str,
    permissions: EditPermissions,
    author: tuple[str, str],
) -> Edit:
    """Create (a ``LockRequest``) or delete (a lock id) the same lock on every member."""

    def edit(tree: SafeTree) -> Change:
        members = group_members(tree, group)
        if not members:
            raise UnknownTarget(
                f"no environment found with environment group {group!r} (no config.json "
                "names it as its environmentGroup)"
            )
        creating = isinstance(lock, LockRequest)
        lock_id = lock.lock_id if isinstance(lock, LockRequest) else lock
        for env in members:
            permissions.check_environment("CreateLock" if creating else "DeleteLock", env, group)
        verb = "Creating" if creating else "Deleting"
        change = Change(messages=[f"{verb} locks '{lock_id}' for environment group '{group}':"])
        for env in members:
            target = LockTarget(env)
            if isinstance(lock, LockRequest):
                step = write_lock(
                    tree,
                    LockRequest(
                        target, lock_id, lock.message, lock.ci_link, lock.suggested_lifetime
                    ),
                    author,
                )
            else:
                step = remove_lock(tree, target, lock_id)
            change.messages += step.messages
            change.paths += step.paths
        return change

    return edit


def delete_environment(environment: str, permissions: EditPermissions) -> Edit:
    """Remove an environment that nothing depends on any more."""

    def edit(tree: SafeTree) -> Change:
        require_environment(tree, environment)
        permissions.check_environment(
            "DeleteEnvironment", environment, read_config(tree, environment).group
        )
        deployed = [
            app
            for app in applications(tree, environment)
            if layout.deployed_version(tree, environment, app) is not None
        ]
        if deployed:
            raise EnvironmentInUse(
                f"could not delete environment {environment!r}: applications are deployed "
                f"there ({', '.join(deployed)}); undeploy them first"
            )
        queued = [
            app
            for app in applications(tree, environment)
            if tree.read_symlink((*layout.deployment_dir(environment, app), "queued_version"))
        ]
        if queued:
            raise EnvironmentInUse(
                f"could not delete environment {environment!r}: versions are queued there "
                f"({', '.join(queued)}); deploy them (lockBehavior ignore) first"
            )
        locked = (
            has_entries(tree, "environments", environment, "locks")
            or any(
                has_entries(tree, *layout.deployment_dir(environment, app), "locks")
                for app in applications(tree, environment)
            )
            or any(
                has_entries(tree, "environments", environment, "teams", team, "locks")
                for team in tree.list(("environments", environment, "teams"))
            )
        )
        if locked:
            raise EnvironmentInUse(
                f"could not delete environment {environment!r}: locks exist on it (environment, "
                "application or team locks); delete them first"
            )
        for other in sorted(tree.list(("environments",))):
            if other != environment and tree.is_dir(("environments", other)):
                if read_config(tree, other).upstream_environment == environment:
                    raise EnvironmentInUse(
                        f"could not delete environment {environment!r}: it is the upstream "
                        f"of {other!r}"
                    )
        paths = [p for p in (tree.remove(("environments", environment)),) if p]
        argocd_file = tree.remove(argocd.file_parts(environment))
        if argocd_file:
            paths.append(argocd_file)
        return Change(messages=[f"Successfully deleted environment '{environment}'"], paths=paths)

    return edit


#: How many release trains and deploys the overview page lists.
REMEMBERED = 20


def remember(
    store: Store,
    what: str,
    author: tuple[str, str],
    commit: str,
    deployed: list[dict[str, Any]],
    skipped: int = 0,
) -> None:
    """Note a release train or deploy that was pushed, for the overview page (the manifest
    repository's history stays the record; this is the last few, at hand)."""
    entry = {
        "at": utc_now(),
        "what": what,
        "by": author[0],
        "commit": commit,
        "deployed": deployed,
        "skipped": skipped,
    }
    store.prepend_to_view("promotions", entry, REMEMBERED)
