"""Unit tests for the policy, team and GitHub policy files, without a server."""

from __future__ import annotations

import re
from pathlib import Path

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
        ("p, role:x, CreateUndeploy, a:b, *, allow\n", "line 1: CreateUndeploy is environment"),
        ("p, role:x, DeployUndeploy, a:b, *, allow\n", "line 1: DeployUndeploy is environment"),
        ("p, role:x, CreateLock, a:b, *, deny\n", "line 1: a permission line"),
        ("p, role:, CreateLock, a:b, *, allow\n", "line 1: the role"),
        ("p, role:x, CreateLock, a:b, *, allow\ng, a, role:\n", "line 2: the role"),
        ("p, role:x, CreateLock, a:b, *, allow\ng, , role:x\n", "line 2: a group line"),
        # Lines Casbin's loader would drop silently (a key its model lacks) are refused.
        ("p, role:x, CreateLock, a:b, *, allow\nP, role:y, CreateLock, a:b, *, allow\n", "line 2"),
        ("p, role:x, CreateLock, a:b, *, allow\np2, role:y, CreateLock, a:b, *, allow\n", "line 2"),
        ("p, role:x, CreateLock, a:b, *, allow\n// a comment\n", "line 2: a line is"),
        ("p, role:x, CreateLock, a:b, *, allow\n, a, b\n", "line 2: a line is"),
        ("p, role:x, CreateLock, a:b, *, allow\np, role:x], CreateLock\n", "line 2: a line is"),
        ("p, role:x(a, b), CreateLock, a:b, *, allow\n", "line 1: .*cannot contain"),
        ("p, role:x, CreateLock, dev group:b, *, allow\n", "line 1: .*whitespace"),
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


def _kinds_of_lines(text: str) -> tuple[set[str], dict[str, set[str]]]:
    policy = parse_policy(text, "policy.csv")
    return policy.permissions, policy.roles_by_subject


def test_comment_and_blank_lines_are_skipped() -> None:
    permissions, roles = _kinds_of_lines(
        "# a comment\n"
        "\n"
        "   \t\n"
        "  # an indented comment, role:x\n"
        "#p, role:ghost, CreateLock, a:*, *, allow\n"
        "#g, team-a, role:ghost\n"
        "p, role:dev, CreateLock, dev:development, *, allow\n"
        "\n"
        "g, team-a, role:dev\n"
    )
    assert permissions == {"p,role:dev,CreateLock,dev:development,*,allow"}
    assert roles == {"team-a": {"dev"}}


def test_whitespace_around_tokens_is_trimmed() -> None:
    permissions, roles = _kinds_of_lines(
        "  p ,role:dev,\tCreateLock  ,   dev:development,*,allow   \n\tg,team-a ,\trole:dev\t\n"
    )
    assert permissions == {"p,role:dev,CreateLock,dev:development,*,allow"}
    assert roles == {"team-a": {"dev"}}
    assert parse_policy("p,role:dev,CreateLock,dev:development,*,allow", "p").permissions == (
        permissions
    )


def test_windows_line_endings() -> None:
    text = (
        "# comment\r\n\r\np, role:dev, CreateRelease, dev:*, *, allow\r\n"
        "g, team-a, role:dev\r\n\r\n"
    )
    permissions, roles = _kinds_of_lines(text)
    assert permissions == {"p,role:dev,CreateRelease,dev:*,*,allow"}
    assert roles == {"team-a": {"dev"}}
    with pytest.raises(PolicyError, match="policy.csv line 3: unknown action 'Fly'"):
        parse_policy("# c\r\n\r\np, role:x, Fly, a:b, *, allow\r\n", "policy.csv")


@pytest.mark.parametrize(
    "line",
    [
        "p, role:dev, CreateRelease, dev:*, *, allow # CreateRelease: <envGroup>:*",
        "p, role:dev, CreateRelease, dev:*, *, allow#comment",
        "p, role:dev # the developers, CreateRelease, dev:*, *, allow",
        "g, team-a, role:dev  # a group (or an email) -> role",
        "g, developer # a group, role:Developer",
        "g, team-a#x, role:dev",
    ],
)
def test_a_comment_after_a_rule_is_refused(line: str) -> None:
    # Neither Casbin's loader nor Kuberpult strips it: it would become part of a name.
    text = f"p, role:dev, CreateLock, dev:development, *, allow\n{line}\n"
    with pytest.raises(PolicyError, match="^policy.csv line 2: '#' starts a comment only"):
        parse_policy(text, "policy.csv")


def test_no_role_or_subject_ever_contains_a_hash() -> None:
    # A comment after any field of a g or p line: refused, never a name with "#" in it.
    rules = ["g, developers, role:Developer", "p, role:Developer, CreateLock, dev:*, *, allow"]
    for rule in rules:
        fields = rule.split(", ")
        for cut in range(len(fields)):
            line = ", ".join([", ".join(fields[: cut + 1]) + " # a, comment", *fields[cut + 1 :]])
            text = f"p, role:x, CreateLock, a:b, *, allow\n{line}\n"
            with pytest.raises(PolicyError, match="line 2: '#' starts a comment"):
                parse_policy(text, "policy.csv")


@pytest.mark.parametrize(
    "line",
    [
        'p, "role:Developer", CreateLock, dev:development, *, allow',
        'p, role:dev, CreateLock, "dev:development", *, allow',
        'g, "team-a", role:dev',
        'g, team-a, "role:dev"',
        'g, "a, b", role:dev',
    ],
)
def test_quotes_are_refused(line: str) -> None:
    # Casbin's line loader keeps quotes in the token, and so does Kuberpult: never a match.
    text = f"p, role:dev, CreateLock, dev:development, *, allow\n{line}\n"
    with pytest.raises(PolicyError, match="^policy.csv line 2: quotes are not part"):
        parse_policy(text, "policy.csv")


def test_groups_and_emails_may_hold_several_roles() -> None:
    policy = parse_policy(
        "p, role:dev, CreateLock, dev:development, *, allow\n"
        "p, role:ops, DeleteLock, *:*, *, allow\n"
        "g, org:team-a, role:dev\n"
        "g, org:team-a, role:ops\n"
        "g, ops@example.com, role:ops\n"
        "g, role:dev, role:ops\n",
        "policy.csv",
    )
    assert policy.roles(User("A", "a@example.com", ("org:team-a",))) == ["dev", "ops"]
    assert policy.roles(User("O", "ops@example.com")) == ["ops"]
    # g lines are not followed transitively, as in Kuberpult (Casbin's role manager would).
    assert policy.roles(User("D", "d@example.com", ("x",))) == []
    policy.check_action(User("O", "ops@example.com"), "DeleteLock", "prod", "production", None)
    with pytest.raises(Forbidden, match="'CreateLock' on environment 'dev:development'"):
        policy.check_action(User("O", "ops@example.com"), "CreateLock", "dev", "development", "a")


def _readme_policy() -> str:
    """The README's fenced RBAC policy example, at its own line numbers (blank lines before)."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    fence = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
    found = [
        "\n" * readme.count("\n", 0, block.start(1)) + block.group(1)
        for block in fence.finditer(readme)
        if re.search(r"^\s*p\s*,\s*role:", block.group(1), re.MULTILINE)
    ]
    assert len(found) == 1, "README.md should have one fenced RBAC policy example"
    return found[0]


def test_the_readme_policy_example_loads() -> None:
    policy = parse_policy(_readme_policy(), "README.md")
    assert any(",CreateRelease," in permission for permission in policy.permissions)
    assert policy.roles_by_subject
    for subject, roles in policy.roles_by_subject.items():
        assert "#" not in subject and not any("#" in role for role in roles)
