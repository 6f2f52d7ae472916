"""Release trains: deploy to an environment (or every member of a group) what its upstream
runs, one commit per train, as an edit under the repository lock.

Kuberpult's git mode (v12: the commit message, the skip reasons and their order), with its
quirks fixed: a train into an ``upstream.latest`` environment deploys each application's newest
release (v12 deploys nothing there), the summary counts what was deployed (v12 counts the
skips), and an application without an upstream version is reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any

from server.models import EditPermissions
from server.release.edits import Edit
from server.release.promotion import UnknownTarget
from server.release.promotion import applications
from server.release.promotion import group_members
from server.release.promotion import has_entries
from server.release.promotion import quoted
from server.release.promotion import team_of
from server.repo import layout
from server.repo.environments import config_path
from server.repo.environments import read_config
from server.repo.layout import Change
from server.repo.safe_tree import SafeTree
from server.store import utc_now


@dataclass(frozen=True)
class TrainTarget:
    """What a train runs into: an environment, or every member of an environment group."""

    name: str
    group: bool = False

    def environments(self, tree: SafeTree) -> list[str]:
        if self.group:
            members = group_members(tree, self.name)
            if not members:
                raise UnknownTarget(
                    f"could not find target of type ENVIRONMENTGROUP and name {self.name!r}: "
                    "no environment's config.json names it as its environmentGroup"
                )
            return members
        if tree.read(config_path(self.name)) is None:
            raise UnknownTarget(
                f"could not find target of type ENVIRONMENT and name {self.name!r}: "
                f"there is no environments/{self.name}/config.json"
            )
        return [self.name]


@dataclass
class TrainOutcome:
    """What a train did, for the response: deployed versions and skips with reasons."""

    deployed: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def clear(self) -> None:
        self.deployed.clear()
        self.skipped.clear()


def release_train(
    target: TrainTarget,
    team: str | None,
    ci_link: str | None,
    permissions: EditPermissions,
    author: tuple[str, str],
    outcome: TrainOutcome,
) -> Edit:
    """The edit of one release train: every environment of the target, one commit."""

    def edit(tree: SafeTree) -> Change:
        outcome.clear()  # the edit may run again on a fresh tree
        now = utc_now()
        paths: list[str] = []
        messages = []
        for environment in target.environments(tree):
            message, changed_paths = _train_environment(
                tree, environment, team, permissions, author, now, outcome
            )
            messages.append(message)
            paths += changed_paths
        text = f"Release Train to environment/environment group '{target.name}':\n\n"
        text += "\n".join(messages)
        if ci_link:
            text += f"\n\nCI-Link: {ci_link}"
        return Change(messages=[text], paths=paths)

    return edit


def _train_environment(
    tree: SafeTree,
    env: str,
    team: str | None,
    permissions: EditPermissions,
    author: tuple[str, str],
    now: str,
    outcome: TrainOutcome,
) -> tuple[str, list[str]]:
    """Kuberpult's per-environment steps, in its order (the order decides the reason)."""
    config = read_config(tree, env)

    def skip_environment(reason: str) -> tuple[str, list[str]]:
        outcome.skipped.append({"environment": env, "application": None, "reason": reason})
        return reason, []

    if not config.upstream_latest and not config.upstream_environment:
        return skip_environment(
            f"Environment '{quoted(env)}' does not have upstream configured - skipping."
        )
    permissions.check_environment("DeployReleaseTrain", env, config.group)
    upstream = config.upstream_environment
    if config.upstream_latest and upstream:
        return skip_environment(
            f"Environment {quoted(env)} has both upstream.latest and upstream.environment "
            "configured - skipping."
        )
    if upstream and tree.read(config_path(upstream)) is None:
        return skip_environment(
            f"Could not find environment config for upstream environment {quoted(upstream)} of "
            f"{quoted(env)} - skipping."
        )
    if has_entries(tree, "environments", env, "locks"):
        return skip_environment(f"Target Environment '{env}' is locked - skipping.")

    deployed_lines: list[str] = []
    skip_lines: list[str] = []
    paths: list[str] = []
    for app in applications(tree, upstream or env):
        app_team = team_of(tree, app)
        if team and app_team != team:
            continue
        if upstream:
            version = layout.deployed_version(tree, upstream, app)
        else:
            versions = layout.release_versions(tree, app)
            version = versions[-1] if versions else None
        reason = _skip_reason(tree, env, upstream, app, app_team, version, permissions)
        if reason is not None or version is None:
            reason = reason or ""
            skip_lines.append(reason)
            outcome.skipped.append({"environment": env, "application": app, "reason": reason})
            continue
        paths += layout.deploy_version(tree, app, version, env, author, now)
        deployed_lines.append(f'deployed version {version} of "{app}" to "{env}"')
        outcome.deployed.append({"environment": env, "application": app, "version": version})
    source = upstream or "latest"
    team_info = f" for team '{team}'" if team else ""
    message = (
        f"Release Train to '{env}' environment:\n\n"
        f"The release train deployed {len(deployed_lines)} services from '{source}' to "
        f"'{env}'{team_info}"
    )
    children = deployed_lines + (["Skipped services", *skip_lines] if skip_lines else [])
    if children:
        message += "\n" + "\n".join(children)
    return message, paths


def _skip_reason(
    tree: SafeTree,
    env: str,
    upstream: str | None,
    app: str,
    app_team: str,
    version: int | None,
    permissions: EditPermissions,
) -> str | None:
    if version is None:
        return (
            f"skipping because there is no version for application {quoted(app)} in env "
            f"{quoted(upstream or env)} \n"
        )
    if version == layout.deployed_version(tree, env, app):
        return f"skipping {quoted(app)} because it is already in the version {version}\n"
    if has_entries(tree, *layout.deployment_dir(env, app), "locks"):
        where = f"application {quoted(app)} in environment {quoted(env)}"
        return f"skipping {where} due to application lock"
    if layout.release_manifest(tree, app, version, env) is None:
        return (
            f"skipping application {quoted(app)} in environment {quoted(env)} because it doesn't "
            "exist there"
        )
    refusal = permissions.application_refusal(env, app, app_team)
    if refusal is not None:
        return f"skipping application {quoted(app)} in environment {quoted(env)} because {refusal}"
    if app_team and has_entries(tree, "environments", env, "teams", app_team, "locks"):
        return (
            f"skipping application {quoted(app)} in environment {quoted(env)} due to team lock on "
            f"team {quoted(app_team)}"
        )
    return None
