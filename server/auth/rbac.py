"""Kuberpult's RBAC: the policy csv (``p``/``g`` lines) and the team file.

A user's roles come from the ``g`` lines that name one of their groups or their email. A
release needs ``CreateRelease`` on ``<envGroup>:*`` for each of its environments, and
``DeployRelease`` on ``<envGroup>:<env>`` for each environment it is auto-deployed to.

The policy file has Casbin's csv shape, and its lines are read by Casbin's own policy line
loader (pycasbin's ``load_policy_line`` into a model with Kuberpult's ``p`` and ``g``
definitions): blank lines and lines starting with ``#`` are skipped, tokens are split at
top-level commas and stripped of surrounding whitespace, and nothing else is interpreted, in
particular neither quotes nor a ``#`` after the start of a line. Kuberpult
(``pkg/auth/rbac.go``, ``ReadRbacPolicy``) does not run Casbin: it deletes every space of a
line and splits it at each comma, so there too a trailing ``# comment`` stays in the last
field, where it silently kills a permission or renames a role. Here such a line, a quoted
token, whitespace inside a token and any line that is neither ``p`` nor ``g`` are refused with
the file and line, and ``p`` lines get Kuberpult's checks (``ValidateRbacPermission``).

Over 250 lines: Kuberpult's permission names and its policy-line rules are long tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field

from casbin.model import Model
from casbin.persist.adapter import load_policy_line

from server.errors import Forbidden
from server.rules import NAME

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
# Kuberpult's isEnvironmentIndependent: these need the target <envGroup>:*.
_ENV_INDEPENDENT = frozenset({"CreateRelease", "CreateUndeploy", "DeployUndeploy"})
_NAME = re.compile(rf"\*|{NAME.pattern}")  # a name, or * for any
_SPACE = re.compile(r"\s")
_NESTING = re.compile(r"[()\[\],]")
_LINE = "a line is '# comment', 'p, role:<Role>, ...' or 'g, <group-or-email>, role:<Role>'"

# The Casbin model of Kuberpult's policy; only its p and g definitions are used, to load lines.
# Decisions do not go through a Casbin enforcer: Kuberpult looks the permission string up for
# the 8 combinations of the group, environment and application or "*" (CheckUserPermissions,
# see Policy._allowed), and maps a group or email to a role by the g lines alone, while
# Casbin's role manager would also follow chains of g lines (g, role:a, role:b) and treat a
# group that happens to be named "role:x" as holding role x.
_MODEL = """
[request_definition]
r = sub, act, obj, app

[policy_definition]
p = sub, act, obj, app, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && r.act == p.act && r.obj == p.obj && r.app == p.app
"""


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
        # Kuberpult's CheckUserPermissions: the permission string of each role for the
        # group, environment and application or * (8 combinations), looked up exactly.
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
    model = Model()
    model.load_model_from_text(_MODEL)
    loaded: dict[str, list[list[str]]] = {key: model.model[key][key].policy for key in "pg"}
    # Lines end at "\n" only (a trailing "\r" is whitespace), as Go's bufio.Scanner and
    # Casbin's file adapter read them, so the line numbers are the editor's.
    for number, raw in enumerate(text.split("\n"), start=1):
        where = f"{source} line {number}"
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # what Casbin's load_policy_line skips too
        if "#" in line:
            raise PolicyError(
                f"{where}: '#' starts a comment only at the beginning of a line; Kuberpult and "
                "Casbin keep the rest of the line in the rule, so put the comment on its own line"
            )
        before = {key: len(rules) for key, rules in loaded.items()}
        try:
            load_policy_line(line, model)
        except IndexError:  # an unbalanced ")" or "]", or no key before the first ","
            raise PolicyError(f"{where}: {_LINE}") from None
        if len(loaded["p"]) > before["p"]:
            tokens = loaded["p"][-1]
            _check_tokens(tokens, where)
            policy.permissions.add(_permission(tokens, where))
        elif len(loaded["g"]) > before["g"]:
            tokens = loaded["g"][-1]
            _check_tokens(tokens, where)
            subject, role = _group(tokens, where)
            policy.roles_by_subject.setdefault(subject, set()).add(role)
        else:
            # Casbin ignores a line whose key its model lacks ("P, ...", "p2, ...", "// ..."),
            # and so does Kuberpult unless it starts with "p" or "g". Silently dropping a rule
            # someone meant to write is worse than refusing to start.
            raise PolicyError(f"{where}: {_LINE}")
    if not policy.permissions:
        raise PolicyError(f"{source} has no permission ('p, role:...') line")
    return policy


def _check_tokens(tokens: list[str], where: str) -> None:
    """Refuse what Casbin's line loader keeps inside a token but Kuberpult cannot match."""
    for token in tokens:
        if '"' in token:
            raise PolicyError(
                f"{where}: quotes are not part of the policy format (Kuberpult and Casbin's "
                f"line loader keep them in the name): {token}"
            )
        if _SPACE.search(token):
            raise PolicyError(f"{where}: a name or value cannot contain whitespace: {token!r}")
        if _NESTING.search(token):
            raise PolicyError(f"{where}: a name or value cannot contain ()[] or ',': {token}")


def _permission(tokens: list[str], where: str) -> str:
    shape = "'p, role:<Role>, <Action>, <envGroup>:<env>, <app>, allow'"
    if len(tokens) != 5 or tokens[4] != "allow":
        raise PolicyError(f"{where}: a permission line is {shape}")
    role, action, target, app, _ = tokens
    if not role.startswith("role:") or len(role) == len("role:"):
        raise PolicyError(f"{where}: the role must look like role:<Role>")
    if action not in ACTIONS:
        raise PolicyError(f"{where}: unknown action {action!r}")
    group, _, env = target.partition(":")
    if not _NAME.fullmatch(group) or not _NAME.fullmatch(env):
        raise PolicyError(f"{where}: the target must be <envGroup>:<env> (names or *)")
    if action in _ENV_INDEPENDENT and env != "*":
        raise PolicyError(f"{where}: {action} is environment-independent; use {group}:*")
    if not _NAME.fullmatch(app):
        raise PolicyError(f"{where}: the application must be a name or *")
    # The key Kuberpult stores and looks up: the line without spaces (PermissionTemplate).
    return ",".join(("p", *tokens))


def _group(tokens: list[str], where: str) -> tuple[str, str]:
    if len(tokens) != 2 or not tokens[0] or not tokens[1].startswith("role:"):
        raise PolicyError(f"{where}: a group line is 'g, <group-or-email>, role:<Role>'")
    if len(tokens[1]) == len("role:"):
        raise PolicyError(f"{where}: the role must look like role:<Role>")
    return tokens[0], tokens[1][len("role:") :]


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
