"""Kuberpult's RBAC: the policy csv (``p``/``g`` lines) and the team file.

A user's roles come from the ``g`` lines that name one of their groups or their email. A
release needs ``CreateRelease`` on ``<envGroup>:*`` for each of its environments, and
``DeployRelease`` on ``<envGroup>:<env>`` for each environment it is auto-deployed to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field

from server.errors import Forbidden

ACTIONS = frozenset(
    {
        "CreateLock",
        "DeleteLock",
        "CreateRelease",
        "DeployRelease",
        "CreateUndeploy",
        "DeployUndeploy",
        "CreateEnvironment",
        "DeleteEnvironment",
        "DeleteEnvironmentApplication",
        "DeployReleaseTrain",
        "SkipEslEvent",
        "RetryFailedEvent",
    }
)
_NAME = re.compile(r"\*|[a-z0-9]+(?:-[a-z0-9]+)*")


class PolicyError(ValueError):
    """A policy or team file line is malformed; the message names the file and line."""


@dataclass(frozen=True)
class User:
    """Who a verified token says the caller is."""

    name: str
    email: str
    groups: tuple[str, ...] = ()


@dataclass
class Policy:
    """The parsed policy csv plus the optional team file."""

    permissions: set[str] = field(default_factory=set)
    roles_by_subject: dict[str, set[str]] = field(default_factory=dict)
    teams: dict[str, set[str]] | None = None

    def roles(self, user: User) -> list[str]:
        """The roles of ``user`` (from its groups and its email)."""
        found: set[str] = set()
        for subject in (*user.groups, user.email):
            found |= self.roles_by_subject.get(subject, set())
        return sorted(found)

    def _allowed(
        self, roles: Iterable[str], action: str, env_group: str, env: str, app: str
    ) -> bool:
        # A policy may use * for the group, the environment and the application.
        return any(
            f"p,role:{role},{action},{group}:{environment},{application},allow" in self.permissions
            for role in roles
            for group in (env_group, "*")
            for environment in (env, "*")
            for application in (app, "*")
        )

    def check_action(
        self, user: User, action: str, group: str, env: str, application: str | None
    ) -> None:
        """Raise ``Forbidden`` unless ``user`` may do ``action`` on ``group:env`` (and app)."""
        roles = self.roles(user)
        if not self._allowed(roles, action, group, env, application or "*"):
            raise Forbidden(
                f"PermissionDenied The user '{user.name}' with role '{', '.join(roles)}' is not "
                f"allowed to perform the action '{action}' on environment '{group}:{env}'"
            )

    def check_release(
        self,
        user: User,
        application: str,
        groups: dict[str, str],
        deploy_to: Iterable[str],
        team: str | None,
    ) -> None:
        """Raise ``Forbidden`` (Kuberpult's messages) unless ``user`` may create this release
        for every environment in ``groups`` (env -> group) and deploy it to ``deploy_to``."""
        roles = self.roles(user)
        for env in sorted(groups):
            if not self._allowed(roles, "CreateRelease", groups[env], "*", application):
                message = (
                    f"PermissionDenied The user '{user.name}' with role '{', '.join(roles)}' is "
                    "not allowed to perform the action 'CreateRelease' on environment '*'"
                )
                raise Forbidden(message + (f" for team '{team}'" if team else ""))
        if self.teams is not None and team:
            members = self.teams.get(team, set()) | self.teams.get("*", set())
            if user.email not in members:
                raise Forbidden(
                    f"PermissionDenied The user {user.name} with email {user.email} is not "
                    f"allowed to perform the action CreateRelease for team {team}"
                )
        for env in sorted(deploy_to):
            if not self._allowed(roles, "DeployRelease", groups[env], env, application):
                raise Forbidden(
                    f"PermissionDenied The user '{user.name}' with role '{', '.join(roles)}' is "
                    f"not allowed to perform the action 'DeployRelease' on environment "
                    f"'{groups[env]}:{env}'"
                )


def parse_policy(text: str, source: str) -> Policy:
    """Parse Kuberpult's policy csv. :raises PolicyError: naming ``source`` and the line."""
    policy = Policy()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.replace(" ", "").replace("\t", "")
        where = f"{source} line {number}"
        if line.startswith("p"):
            policy.permissions.add(_permission(line, where))
        elif line.startswith("g"):
            parts = line.split(",")
            if len(parts) != 3 or not parts[2].startswith("role:") or not parts[1]:
                raise PolicyError(f"{where}: a group line is 'g, <group-or-email>, role:<Role>'")
            policy.roles_by_subject.setdefault(parts[1], set()).add(parts[2][len("role:") :])
    if not policy.permissions:
        raise PolicyError(f"{source} has no permission ('p, role:...') line")
    return policy


def _permission(line: str, where: str) -> str:
    parts = line.split(",")
    shape = "'p, role:<Role>, <Action>, <envGroup>:<env>, <app>, allow'"
    if len(parts) != 6 or parts[0] != "p" or parts[5] != "allow":
        raise PolicyError(f"{where}: a permission line is {shape}")
    role, action, target, app = parts[1:5]
    if not role.startswith("role:") or len(role) == len("role:"):
        raise PolicyError(f"{where}: the role must look like role:<Role>")
    if action not in ACTIONS:
        raise PolicyError(f"{where}: unknown action {action!r}")
    group, _, env = target.partition(":")
    if not _NAME.fullmatch(group) or not _NAME.fullmatch(env):
        raise PolicyError(f"{where}: the target must be <envGroup>:<env> (names or *)")
    if action == "CreateRelease" and env != "*":
        raise PolicyError(f"{where}: CreateRelease is environment-independent; use {group}:*")
    if not _NAME.fullmatch(app):
        raise PolicyError(f"{where}: the application must be a name or *")
    return line


def parse_teams(text: str, source: str) -> dict[str, set[str]]:
    """Parse the team file: ``<team>,<email1> <email2>`` per line; ``*`` means every team."""
    teams: dict[str, set[str]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        team, comma, emails = raw.partition(",")
        team = team.strip()
        if not comma or not _NAME.fullmatch(team):
            raise PolicyError(f"{source} line {number}: a line is '<team>,<email> <email>...'")
        if team in teams:
            raise PolicyError(f"{source} line {number}: team {team!r} appears twice")
        teams[team] = set(emails.split())
    return teams
