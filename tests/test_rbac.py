"""Unit tests for the policy, team and GitHub policy files, without a server."""

from __future__ import annotations

import pytest

from server.auth.github import parse_github_policy
from server.auth.rbac import PolicyError
from server.auth.rbac import User
from server.auth.rbac import parse_policy
from server.auth.rbac import parse_teams
from server.errors import Forbidden

POLICY = parse_policy(
    "p, role:dev, CreateRelease, dev:*, *, allow\n"
    "p, role:dev, DeployRelease, dev:development, *, allow\n"
    "# comments and other lines are ignored\n"
    "g, team-a, role:dev\n",
    "policy.csv",
)
ALICE = User("Alice", "alice@example.com", ("team-a",))


def test_roles_come_from_groups_and_email() -> None:
    assert POLICY.roles(ALICE) == ["dev"]
    assert POLICY.roles(User("Bob", "bob@example.com")) == []


def test_release_is_allowed_by_env_group_and_deploy_permission() -> None:
    POLICY.check_release(ALICE, "app", {"development": "dev"}, ["development"], None)
    with pytest.raises(Forbidden, match="'CreateRelease' on environment '\\*' for team 't'"):
        POLICY.check_release(ALICE, "app", {"production": "prod"}, [], "t")
    with pytest.raises(Forbidden, match="'DeployRelease' on environment 'dev:staging'"):
        POLICY.check_release(ALICE, "app", {"staging": "dev"}, ["staging"], None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("g, a, role:x\n", "no permission"),
        ("p, role:x, CreateRelease, a:*, *\n", "line 1: a permission line"),
        ("p, role:x, Fly, a:b, *, allow\n", "line 1: unknown action 'Fly'"),
        ("p, x, CreateLock, a:b, *, allow\n", "line 1: the role"),
        ("p, role:x, CreateLock, A:b, *, allow\n", "line 1: the target"),
        ("p, role:x, CreateRelease, a:b, *, allow\n", "line 1: CreateRelease is environment"),
        ("p, role:x, CreateLock, a:b, *, allow\ng, role:x\n", "line 2: a group line"),
    ],
)
def test_bad_policy_lines_are_named(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(text, "policy.csv")


def test_team_file() -> None:
    teams = parse_teams("payments,a@x.io b@x.io\n*,admin@x.io\n", "teams")
    assert teams == {"payments": {"a@x.io", "b@x.io"}, "*": {"admin@x.io"}}
    with pytest.raises(PolicyError, match="line 2: team 'a' appears twice"):
        parse_teams("a,x@y\na,z@y\n", "teams")


def test_github_policy_matches_repository_ref_and_environment() -> None:
    policy = parse_github_policy(
        '{"rules": [{"repository": "acme/api", "ref": "refs/heads/main", "environment": "prod",'
        ' "applications": ["api"], "environments": ["*"]}]}',
        "github.json",
    )
    claims = {"repository": "acme/api", "ref": "refs/heads/main", "environment": "prod"}
    policy.check_release(claims, "api", ["development", "production"])
    for changed in ({"environment": "dev"}, {"ref": "refs/tags/v1"}, {"repository": "x/api"}):
        with pytest.raises(Forbidden):
            policy.check_release({**claims, **changed}, "api", ["development"])
    with pytest.raises(Forbidden):
        policy.check_release(claims, "web", ["development"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "must be an object"),
        ('{"rules": [{"applications": ["a"], "environments": ["b"]}]}', "rule 1: needs"),
        (
            '{"rules": [{"repository": "a/b", "applications": [], "environments": ["b"]}]}',
            "applications",
        ),
        (
            '{"rules": [{"repository": "a/b", "applications": ["a"], "environments": ["b"],'
            ' "branch": "main"}]}',
            "unknown key 'branch'",
        ),
    ],
)
def test_bad_github_policies_are_named(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_github_policy(text, "github.json")
