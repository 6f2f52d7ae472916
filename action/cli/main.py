"""``kuberpult-client``: Kuberpult's command-line client, flag for flag, minus its known bugs.

Exit codes as Kuberpult's: 0 success, 1 the server call failed, 2 usage. Diagnostics go to
stderr with Go's log timestamp; only ``help`` and the dry-run diff write to stdout.

Over 250 lines: global flags, the release and dry-run commands and their messages, each as
Kuberpult's client words them.
"""

from __future__ import annotations

import difflib
import os
import sys
import uuid
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass

from action import client
from action import oauth
from action.cli import goflags
from action.cli.common import FAILURE
from action.cli.common import SUCCESS
from action.cli.common import USAGE
from action.cli.common import HelpShown
from action.cli.common import UsageError
from action.cli.common import log
from action.cli.locks import LOCK_COMMANDS
from action.cli.locks import lock_command
from action.cli.promotion import PROMOTION_COMMANDS
from action.cli.release_args import parse_release
from action.client import Connection
from action.client import Release
from action.client import RequestFailed

GLOBAL_HELP = {
    "url": "the server's base URL (exactly once), e.g. https://kuberpult.example.com",
    "author_name": "the git author of what this call changes",
    "author_email": "the git author's email",
    "client_uuid": "an id sent with every attempt, so a resend finds its release",
    "retries": "attempts after the first, for network errors, 408, 429 and 5xx (default 3)",
    "timeout": "seconds per attempt (default 180)",
    "oauth_token_url": "fetch a token by the client-credentials grant from this URL "
    "(KUBERPULT_OAUTH_CLIENT_ID, KUBERPULT_OAUTH_CLIENT_SECRET)",
}
HELP = """\
kuberpult-client [global flags] <subcommand> [flags]

global flags: --url URL (required) --author_name --author_email --client_uuid --retries N
              --timeout SECONDS --oauth_token_url URL
subcommands:  release, release-train, deploy, create-env-lock, delete-env-lock,
              create-app-lock, delete-app-lock, create-team-lock, delete-team-lock,
              create-group-lock, delete-group-lock, get-commit-deployments,
              get-deployment-commit, delete-environment, help
environment:  KUBERPULT_DEX_ACCESS_TOKEN, KUBERPULT_IAP_TOKEN,
              KUBERPULT_OAUTH_CLIENT_ID / KUBERPULT_OAUTH_CLIENT_SECRET (with --oauth_token_url)

kuberpult-client --help             this text and the global flags
kuberpult-client --url URL SUB --help   the flags of subcommand SUB
"""


# -- global flags ----------------------------------------------------------------------------

_P = "error while parsing command line arguments, error: error while reading command line arguments, error: "  # noqa: E501
_C = "error while creating kuberpult client parameters, error: "


@dataclass(frozen=True)
class GlobalArgs:
    """The global flags, and the tokens from the subcommand on."""

    url: str
    author_name: str | None
    author_email: str | None
    client_uuid: str | None
    retries: int
    timeout: int
    oauth_token_url: str | None
    rest: list[str]


def parse_global(tokens: list[str]) -> GlobalArgs:
    """Parse the flags before the subcommand. :raises UsageError: Kuberpult's messages."""
    strings = {"url", "author_name", "author_email", "client_uuid", "oauth_token_url"}
    try:
        parsed = goflags.parse(
            tokens, strings, {"retries", "timeout"}, set(), title="top level", help=GLOBAL_HELP
        )
    except goflags.HelpRequested as asked:
        raise HelpShown(HELP + "\n" + asked.usage) from None
    except goflags.FlagError as error:
        raise UsageError(_P + str(error)) from None
    if len(parsed.all("url")) != 1:
        raise UsageError(_C + "the --url arg must be set exactly once")
    for name in (
        "author_name",
        "author_email",
        "client_uuid",
        "retries",
        "timeout",
        "oauth_token_url",
    ):
        if len(parsed.all(name)) > 1:
            raise UsageError(_C + f"the --{name} arg must be set at most once")
    retries = int(parsed.first("retries") or 3)
    timeout = int(parsed.first("timeout") or 180)
    if retries <= 0:
        raise UsageError(_C + "--retries arg value must be positive")
    if timeout <= 0:
        raise UsageError(_C + "--timeout arg value must be positive")
    return GlobalArgs(
        url=parsed.all("url")[0],
        author_name=parsed.first("author_name"),
        author_email=parsed.first("author_email"),
        client_uuid=parsed.first("client_uuid"),
        retries=retries,
        timeout=timeout,
        oauth_token_url=parsed.first("oauth_token_url"),
        rest=parsed.rest,
    )


# -- release ---------------------------------------------------------------------------------

# -- running ---------------------------------------------------------------------------------


def run(argv: list[str], environ: Mapping[str, str]) -> int:
    """Run the client; return the exit code."""
    try:
        return _run(argv, environ)
    except HelpShown as shown:
        print(shown.text, end="")
        return SUCCESS


def _run(argv: list[str], environ: Mapping[str, str]) -> int:
    if argv[:1] == ["help"]:
        # Kuberpult's client wants --url even here; help should not need a server.
        print(HELP, end="")
        return SUCCESS
    try:
        global_args = parse_global(argv)
    except UsageError as error:
        log(f"error while parsing command line arguments, error: {error}")
        return USAGE
    if not global_args.rest:
        log("a subcommand must be specified")
        return USAGE
    command, tokens = global_args.rest[0], global_args.rest[1:]
    if command == "help":
        print(HELP, end="")
        return SUCCESS
    handler = _HANDLERS.get(command)
    if handler is None:
        log(f"unknown subcommand {command}")
        return USAGE
    try:
        connection = _connection(global_args, environ)
    except UsageError as error:
        log(str(error))
        return USAGE
    except Exception as error:  # noqa: BLE001 - any failure to get a token is exit 1
        log(f"error while fetching a token from {global_args.oauth_token_url}, error: {error}")
        return FAILURE
    return handler(connection, tokens)


def _connection(args: GlobalArgs, environ: Mapping[str, str]) -> Connection:
    dex_token = environ.get("KUBERPULT_DEX_ACCESS_TOKEN")
    if args.oauth_token_url:
        client_id = environ.get("KUBERPULT_OAUTH_CLIENT_ID")
        secret = environ.get("KUBERPULT_OAUTH_CLIENT_SECRET")
        if not client_id or not secret:
            raise UsageError(
                "--oauth_token_url needs KUBERPULT_OAUTH_CLIENT_ID and "
                "KUBERPULT_OAUTH_CLIENT_SECRET in the environment"
            )
        dex_token = oauth.fetch_client_credentials_token(
            args.oauth_token_url, client_id, secret, environ.get("KUBERPULT_OAUTH_AUDIENCE")
        )
    return Connection(
        url=args.url,
        author_name=args.author_name,
        author_email=args.author_email,
        # One id per invocation, sent with every retry: a resend after a timeout is the same
        # release on the server, even without --version (Kuberpult's client sends none).
        client_uuid=args.client_uuid or str(uuid.uuid4()),
        retries=args.retries,
        timeout=float(args.timeout),
        dex_token=dex_token,
        iap_token=environ.get("KUBERPULT_IAP_TOKEN"),
    )


def release_command(connection: Connection, tokens: list[str]) -> int:
    """``release``: send one release; report where it landed."""
    try:
        release, args = parse_release(tokens)
    except UsageError as error:
        log(f"error while parsing command line args, error: {error}")
        return USAGE
    if release.prepublish and not args.parsed.flag("use_dex_auth"):
        log(
            "error on release, error: error while preparing HTTP request, error: prepublish "
            "endpoint is only available for the new api endpoint which is only available "
            "through dex authentication"
        )
        return FAILURE
    if args.parsed.flag("dry-run"):
        return _dry_run(connection, release)
    try:
        answer = client.send(
            connection,
            "POST",
            "api/release",
            files=release.parts,
            headers=connection.headers(uuid=True),
            log=log,
        )
    except RequestFailed as error:
        log(f"error on release, error: {error}")
        return FAILURE
    log(f"Success: {answer.status} - {answer.reason}\nResponse body:\n{answer.body.rstrip()}")
    version = answer.headers.get("X-Release-Version", "?")
    where = answer.headers.get("X-Manifest-Commit")
    log(
        f"released version {version} of {release.application!r}"
        + (f" in manifest-repo commit {where}" if where else "")
        + (
            f" ({connection.endpoint(answer.headers['Location'])})"
            if "Location" in answer.headers
            else ""
        )
    )
    return SUCCESS


def _dry_run(connection: Connection, release: Release) -> int:
    log(
        "This is a dry run. The supplied manifests are compared with the latest release of "
        "the application on the server. Lines marked - are the existing release, lines "
        "marked + the supplied manifests."
    )
    path = f"api/application/{release.application}/release/manifests/latest"
    existing: dict[str, str] = {}
    try:
        answer = client.send(
            connection, "POST", path, headers=connection.headers(), retry=False, log=log
        )
        body = answer.json()
        if not isinstance(body, dict) or not isinstance(body.get("manifests"), dict):
            log(f"error while unmarshalling manifests, error: unexpected answer {answer.body!r}")
            return FAILURE
        existing = {env: str(m.get("content", "")) for env, m in body["manifests"].items()}
    except RequestFailed as error:
        if error.answer is None or error.answer.status != 404:
            log(f"error on getting manifests, error: {error}")
            return FAILURE
    for env in sorted(release.manifests):
        supplied = release.manifests[env].decode("utf-8", "replace")
        print(f"Diff for the manifest on environment '{env}':")
        diff = difflib.unified_diff(
            existing.get(env, "").splitlines(keepends=True),
            supplied.splitlines(keepends=True),
            "existing",
            "supplied",
        )
        print("".join(diff), end="")
    return SUCCESS


# -- locks -----------------------------------------------------------------------------------

_HANDLERS: dict[str, Callable[[Connection, list[str]], int]] = {
    "release": release_command,
    **{command: lock_command(command) for command in LOCK_COMMANDS},
    **PROMOTION_COMMANDS,
}


def main() -> None:
    """Console entry point."""
    sys.exit(run(sys.argv[1:], os.environ))
