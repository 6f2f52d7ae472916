"""The subcommands after a release: ``release-train``, ``get-commit-deployments``,
``get-deployment-commit``, ``delete-environment`` (Kuberpult's flags and messages) and ``deploy``
(ours: Kuberpult deploys one version only from its web UI)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from action import client
from action.cli import goflags
from action.cli.common import FAILURE
from action.cli.common import REQUEST_URI
from action.cli.common import SUCCESS
from action.cli.common import USAGE
from action.cli.common import UsageError
from action.cli.common import log
from action.cli.common import parse_subcommand
from action.client import Answer
from action.client import Connection
from action.client import RequestFailed

# Kuberpult's client takes any character from '0' to 'f' after lower-casing (':' or '@'
# pass); a commit id is hex.
_COMMIT = re.compile(r"[0-9a-fA-F]{40}")
LOCK_BEHAVIORS = ("record", "fail", "ignore")
HELP = {
    "target-environment": "the environment (or, with --use_env_group_target, the group)",
    "team": "move only this team's applications",
    "ci_link": "a link to the CI run (an absolute URL), recorded in the commit",
    "use_env_group_target": "the target is an environment group: every member moves",
    "use_dex_auth": "accepted for Kuberpult's scripts; it changes nothing",
    "commit": "the source commit (40 hex digits)",
    "out": "write the answer to this file instead of stdout",
    "environment": "the environment (exactly once)",
    "application": "the application (exactly once)",
    "version": "the release version to deploy (exactly once)",
    "lock_behavior": "what a lock does: record (queue it, the default), fail, or ignore",
}


def _parse(
    command: str,
    tokens: list[str],
    strings: set[str],
    *,
    ints: frozenset[str] = frozenset(),
    bools: frozenset[str] = frozenset(),
) -> goflags.Parsed:
    return parse_subcommand(tokens, strings, set(ints), set(bools), title=command, help=HELP)


def _once(parsed: goflags.Parsed, name: str) -> str:
    values = parsed.all(name)
    if len(values) != 1:
        raise UsageError(f"the --{name} arg must be set exactly once")
    return str(values[0])


def _at_most_once(parsed: goflags.Parsed, name: str) -> str | None:
    values = parsed.all(name)
    if len(values) > 1:
        raise UsageError(f"the --{name} arg must be set at most once")
    return str(values[0]) if values else None


Handler = Callable[[Connection, list[str]], int]


def _usage(handler: Handler) -> Handler:
    def wrapped(connection: Connection, tokens: list[str]) -> int:
        try:
            return handler(connection, tokens)
        except UsageError as error:
            log(f"error while parsing command line args, error: {error}")
            return USAGE

    return wrapped


def _success(answer: Answer) -> int:
    log(f"Success: {answer.status} - {answer.reason}\nResponse body:\n{answer.body.rstrip()}")
    return SUCCESS


@_usage
def release_train(connection: Connection, tokens: list[str]) -> int:
    """``release-train``: deploy to an environment (or group) what its upstream runs."""
    parsed = _parse(
        "release-train",
        tokens,
        {"target-environment", "team", "ci_link"},
        bools=frozenset({"use_env_group_target", "use_dex_auth"}),
    )
    target = _once(parsed, "target-environment")
    team = _at_most_once(parsed, "team")
    ci_link = _at_most_once(parsed, "ci_link")
    if ci_link is not None and not REQUEST_URI.fullmatch(ci_link):
        raise UsageError(f"provided invalid --ci_link value '{ci_link}'")
    group = parsed.flag("use_env_group_target")
    try:
        answer = client.release_train(
            connection, target, group=group, team=team, ci_link=ci_link, log=log
        )
    except RequestFailed as error:
        log(f"error on release train, error: {error}")
        return FAILURE
    return _success(answer)


@_usage
def get_commit_deployments(connection: Connection, tokens: list[str]) -> int:
    """``get-commit-deployments``: where the releases of a source commit run."""
    parsed = _parse("get-commit-deployments", tokens, {"commit", "out"})
    commits = parsed.all("commit")
    if not commits:
        raise UsageError("the commit hash must be set with the --commit flag")
    commit = str(commits[-1])
    if not _COMMIT.fullmatch(commit):
        raise UsageError(f"the commit hash: {commit} is invalid")
    out = _at_most_once(parsed, "out")
    try:
        answer = client.send(
            connection,
            "GET",
            f"api/commit-deployments/{commit}",
            headers=connection.headers(authors=False),
            retry=False,
            log=log,
        )
    except RequestFailed as error:
        log(f"error on commit deployments, error: {error}")
        return FAILURE
    if out:
        Path(out).write_text(answer.body)
    else:
        print(answer.body)
    return SUCCESS


@_usage
def get_deployment_commit(connection: Connection, tokens: list[str]) -> int:
    """``get-deployment-commit``: the source commit of what an environment runs."""
    parsed = _parse("get-deployment-commit", tokens, {"environment", "application"})
    environment, application = _once(parsed, "environment"), _once(parsed, "application")
    path = (
        f"api/environments/{quote(environment, safe='')}/applications/"
        f"{quote(application, safe='')}/commit"
    )
    try:
        answer = client.send(
            connection, "GET", path, headers=connection.headers(authors=False), retry=False, log=log
        )
    except RequestFailed as error:
        log(f"error on commit deployments, error: {error}")
        return FAILURE
    print(answer.body)
    return SUCCESS


@_usage
def delete_environment(connection: Connection, tokens: list[str]) -> int:
    """``delete-environment``: remove an environment nothing runs in any more."""
    parsed = _parse("delete-environment", tokens, {"environment"})
    environment = _once(parsed, "environment")
    try:
        answer = client.send(
            connection,
            "DELETE",
            f"api/environments/{quote(environment, safe='')}",
            headers=connection.headers(authors=False),
            log=log,
        )
    except RequestFailed as error:
        log(f"error on delete environment, error: {error}")
        return FAILURE
    return _success(answer)


@_usage
def deploy(connection: Connection, tokens: list[str]) -> int:
    """``deploy`` (kuberpult-lite): deploy one version that is in the repository."""
    parsed = _parse(
        "deploy",
        tokens,
        {"environment", "application", "lock_behavior"},
        ints=frozenset({"version"}),
    )
    environment, application = _once(parsed, "environment"), _once(parsed, "application")
    version = int(_once(parsed, "version"))
    if version < 1:
        raise UsageError("--version arg value must be positive")
    behavior = _at_most_once(parsed, "lock_behavior") or "record"
    if behavior not in LOCK_BEHAVIORS:
        raise UsageError(
            f"provided invalid --lock_behavior value '{behavior}', it must be one of "
            + ", ".join(LOCK_BEHAVIORS)
        )
    path = (
        f"api/environments/{quote(environment, safe='')}/applications/"
        f"{quote(application, safe='')}/deployment"
    )
    try:
        answer = client.send(
            connection,
            "PUT",
            path,
            json_body={"version": version, "lockBehavior": behavior},
            headers=connection.headers(),
            log=log,
        )
    except RequestFailed as error:
        log(f"error on deploy, error: {error}")
        return FAILURE
    return _success(answer)


PROMOTION_COMMANDS: dict[str, Handler] = {
    "release-train": release_train,
    "get-commit-deployments": get_commit_deployments,
    "get-deployment-commit": get_deployment_commit,
    "delete-environment": delete_environment,
    "deploy": deploy,
}
