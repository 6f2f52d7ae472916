"""The lock subcommands: create/delete environment, application and team locks."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

from action import client
from action.cli.common import FAILURE
from action.cli.common import REQUEST_URI
from action.cli.common import SUCCESS
from action.cli.common import USAGE
from action.cli.common import UsageError
from action.cli.common import log
from action.cli.common import parse_subcommand
from action.client import Connection
from action.client import RequestFailed

_LIFETIME = re.compile(r"[1-9][0-9]*[hdw]")
LOCK_HELP = {
    "environment": "the environment (exactly once)",
    "application": "the application (exactly once)",
    "team": "the team (exactly once)",
    "lockID": "the lock's id (exactly once)",
    "message": "why the lock is there (a team lock needs one)",
    "ci_link": "a link to the CI run (an absolute URL)",
    "suggested_lifetime": "how long the lock should stay, e.g. 2h, 3d or 1w",
    "environment-group": "the environment group: the lock goes on every member (exactly once)",
}


LOCK_COMMANDS = {
    "create-env-lock": (
        "PUT",
        ("environment", "lockID"),
        "environments/{environment}/locks/{lockID}",
    ),  # noqa: E501
    "delete-env-lock": (
        "DELETE",
        ("environment", "lockID"),
        "environments/{environment}/locks/{lockID}",
    ),  # noqa: E501
    "create-app-lock": (
        "PUT",
        ("environment", "application", "lockID"),
        "environments/{environment}/applications/{application}/locks/{lockID}",
    ),
    "delete-app-lock": (
        "DELETE",
        ("environment", "application", "lockID"),
        "environments/{environment}/applications/{application}/locks/{lockID}",
    ),
    "create-team-lock": (
        "PUT",
        ("environment", "team", "lockID"),
        "api/environments/{environment}/lock/team/{team}/{lockID}",
    ),
    "delete-team-lock": (
        "DELETE",
        ("environment", "team", "lockID"),
        "api/environments/{environment}/lock/team/{team}/{lockID}",
    ),
    "create-group-lock": (
        "PUT",
        ("environment-group", "lockID"),
        "environment-groups/{group}/locks/{lockID}",
    ),
    "delete-group-lock": (
        "DELETE",
        ("environment-group", "lockID"),
        "environment-groups/{group}/locks/{lockID}",
    ),
}


def lock_command(command: str) -> Callable[[Connection, list[str]], int]:
    """The handler of one lock subcommand."""
    method, required, template = LOCK_COMMANDS[command]
    creating = method == "PUT"
    optional = ("message", "ci_link", "suggested_lifetime") if creating else ()

    def handler(connection: Connection, tokens: list[str]) -> int:
        try:
            values = _lock_args(command, tokens, required, optional, team_lock="team" in required)
        except UsageError as error:
            log(f"error while parsing command line args, error: {error}")
            return USAGE
        body = None
        if creating:
            body = {"message": values.get("message", "")}
            if "ci_link" in values:
                body["ciLink"] = values["ci_link"]
            if "suggested_lifetime" in values:
                body["suggestedLifeTime"] = values["suggested_lifetime"]
        try:
            names = {k.replace("environment-group", "group"): v for k, v in values.items()}
            path = template.format(**{k: quote(v, safe="") for k, v in names.items()})
            answer = client.send(
                connection, method, path, json_body=body, headers=connection.headers(), log=log
            )
        except RequestFailed as error:
            log(f"error on {command}, error: {error}")
            return FAILURE
        log(f"Success: {answer.status} - {answer.reason}\nResponse body:\n{answer.body.rstrip()}")
        return SUCCESS

    return handler


def _lock_args(
    command: str,
    tokens: list[str],
    required: tuple[str, ...],
    optional: tuple[str, ...],
    *,
    team_lock: bool,
) -> dict[str, str]:
    parsed = parse_subcommand(
        tokens, set(required) | set(optional), set(), set(), title=command, help=LOCK_HELP
    )
    values: dict[str, str] = {}
    for name in required:
        if len(parsed.all(name)) != 1:
            raise UsageError(f"the --{name} arg must be set exactly once")
        values[name] = parsed.all(name)[0]
    for name in optional:
        if len(parsed.all(name)) > 1:
            raise UsageError(f"the --{name} arg must be set at most once")
        if parsed.all(name):
            values[name] = parsed.all(name)[0]
    if team_lock and optional and not values.get("message"):
        raise UsageError("the --message arg must be set exactly once and must not be empty")
    if "ci_link" in values and not REQUEST_URI.fullmatch(values["ci_link"]):
        raise UsageError(f"provided invalid --ci_link value '{values['ci_link']}'")
    lifetime = values.get("suggested_lifetime")
    if lifetime is not None and not _LIFETIME.fullmatch(lifetime):
        raise UsageError(
            f"provided invalid --suggested_lifetime value '{lifetime}', it must match "
            "^[1-9][0-9]*(h|d|w)$"
        )
    return values
