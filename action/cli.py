"""``kuberpult-client``: Kuberpult's command-line client, flag for flag, minus its known bugs.

Exit codes as Kuberpult's: 0 success, 1 the server call failed, 2 usage. Diagnostics go to
stderr with Go's log timestamp; only ``help`` and the dry-run diff write to stdout.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import time
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from action import client
from action import goflags
from action.client import Connection
from action.client import Release
from action.client import RequestFailed

SUCCESS, FAILURE, USAGE = 0, 1, 2
_SHA1 = re.compile(r"[0-9a-fA-F]{40}")
_AUTHOR = re.compile(r"[^<\n]+( <[^@\n]+@[^>\n]+>)?")
_REQUEST_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*:|/)\S*")
_FULL_SHA = "must be assigned a complete SHA1 commit hash in hexadecimal"
_LIFETIME = re.compile(r"[1-9][0-9]*[hdw]")
UNSUPPORTED = (
    "release-train",
    "create-group-lock",
    "delete-group-lock",
    "get-commit-deployments",
    "get-deployment-commit",
    "delete-environment",
)
HELP = """\
kuberpult-client [global flags] <subcommand> [flags]

global flags: --url URL (required) --author_name --author_email --client_uuid --retries N
              --timeout SECONDS --oauth_token_url URL
subcommands:  release, create-env-lock, delete-env-lock, create-app-lock, delete-app-lock,
              create-team-lock, delete-team-lock, help
environment:  KUBERPULT_DEX_ACCESS_TOKEN, KUBERPULT_IAP_TOKEN,
              KUBERPULT_OAUTH_CLIENT_ID / KUBERPULT_OAUTH_CLIENT_SECRET (with --oauth_token_url)
"""


class UsageError(Exception):
    """Bad command-line usage (exit 2); the message is Kuberpult's."""


def log(message: str) -> None:
    """One diagnostic line on stderr, with Go's ``log`` timestamp."""
    print(f"{time.strftime('%Y/%m/%d %H:%M:%S')} {message}", file=sys.stderr, flush=True)


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
        parsed = goflags.parse(tokens, strings, {"retries", "timeout"}, set())
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

_RELEASE_STRINGS = {
    "application",
    "environment",
    "manifest",
    "signature",
    "team",
    "source_commit_id",
    "previous_commit_id",
    "source_author",
    "source_message",
    "display_version",
    "ci_link",
}
_RELEASE_INTS = {"version", "revision"}
_RELEASE_BOOLS = {"skip_signatures", "use_dex_auth", "prepublish", "dry-run"}


@dataclass(frozen=True)
class ReleaseArgs:
    """The release flags after every rule passed (files not read yet)."""

    parsed: goflags.Parsed

    @property
    def unsigned(self) -> bool:
        """Signatures are neither required nor allowed."""
        return self.parsed.flag("skip_signatures") or self.parsed.flag("use_dex_auth")


def read_release_args(tokens: list[str]) -> ReleaseArgs:
    """Parse and check the release flags (Kuberpult's ``readArgs``: same order, same texts).

    :raises UsageError: the first rule broken.
    """
    try:
        parsed = goflags.parse(tokens, _RELEASE_STRINGS, _RELEASE_INTS, _RELEASE_BOOLS)
    except goflags.FlagError as error:
        raise UsageError(f"error while parsing command line arguments, error: {error}") from None
    if parsed.rest:
        raise UsageError(f'these arguments are not recognised: "{" ".join(parsed.rest)}"')
    args = ReleaseArgs(parsed)
    _check_pairing(parsed.order, signatures=not args.unsigned)
    _check_release_fields(parsed, args.unsigned)
    return args


def _check_pairing(order: list[str], *, signatures: bool) -> None:
    # Go checks raw tokens, so '--environment=x' or '-manifest m' slipped past and could crash
    # the client; checking the parsed flags in order treats every spelling alike.
    def at(i: int) -> str | None:
        return order[i] if 0 <= i < len(order) else None

    for i, name in enumerate(order):
        if name == "environment" and at(i + 1) != "manifest":
            raise UsageError(
                "all --environment args must have a --manifest arg set immediately afterwards"
            )
        if name == "manifest" and at(i - 1) != "environment":
            raise UsageError(
                "all --manifest args must be set immediately after an --environment arg"
            )
    if not signatures:
        return
    for i, name in enumerate(order):
        if name == "manifest" and at(i + 1) != "signature":
            raise UsageError(
                "all --manifest args must have a --signature arg set immediately afterwards, "
                "unless --skip_signatures is set"
            )
        if name == "signature" and at(i - 1) != "manifest":
            raise UsageError("all --signature args must be set immediately after a --manifest arg")


def _check_release_fields(parsed: goflags.Parsed, unsigned: bool) -> None:
    count = {name: len(parsed.all(name)) for name in _RELEASE_STRINGS | _RELEASE_INTS}
    once = "the --{} arg must be set at most once"
    rules: list[tuple[bool, str]] = [
        (count["application"] != 1, "the --application arg must be set exactly once"),
        (
            count["environment"] == 0,
            "the args --environment and --manifest must be set at least once",
        ),  # noqa: E501
        (count["team"] > 1, once.format("team")),
        (count["source_commit_id"] > 1, once.format("source_commit_id")),
        (
            any(not _SHA1.fullmatch(v) for v in parsed.all("source_commit_id")),
            "the --source_commit_id arg " + _FULL_SHA,
        ),
        (count["previous_commit_id"] > 1, once.format("previous_commit_id")),
        (
            count["previous_commit_id"] > 0 and count["source_commit_id"] == 0,
            "the --previous_commit_id arg can be set only if --source_commit_id is set",
        ),
        (
            any(not _SHA1.fullmatch(v) for v in parsed.all("previous_commit_id")),
            "the --previous_commit_id arg " + _FULL_SHA,
        ),
        (count["source_author"] > 1, once.format("source_author")),
        (
            any(not _AUTHOR.fullmatch(v) for v in parsed.all("source_author")),
            "the --source_author must be assigned a proper author identifier, matching the regex "
            r"^[^<\n]+( <[^@\n]+@[^>\n]+>)?$",
        ),
        (count["source_message"] > 1, once.format("source_message")),
        (count["version"] > 1, once.format("version")),
        (
            any(int(v) <= 0 for v in parsed.all("version")),
            "the --version arg value must be positive",
        ),  # noqa: E501
        (count["revision"] > 1, once.format("revision")),
        (
            any(int(v) <= 0 for v in parsed.all("revision")),
            "the --revision arg value must be positive",
        ),  # noqa: E501
        (count["display_version"] > 1, once.format("display_version")),
        (
            any(len(v.encode()) > 15 for v in parsed.all("display_version")),
            "the --display_version arg must be at most 15 characters long",
        ),
        # Go accepts an empty display version, which the server then refuses.
        (
            any(v == "" for v in parsed.all("display_version")),
            "the --display_version arg must not be empty",
        ),
        (
            unsigned and count["signature"] > 0,
            "--signature args are not allowed when --skip_signatures or use_dex_auth are set",
        ),
        (count["ci_link"] > 1, once.format("ci_link")),
    ]
    for broken, message in rules:
        if broken:
            raise UsageError(message)
    for link in parsed.all("ci_link"):
        if not _REQUEST_URI.fullmatch(link):
            raise UsageError(f"provided invalid --ci_link value '{link}'")
    environments = parsed.all("environment")
    for env in environments:
        if environments.count(env) > 1:
            raise UsageError(f"the environment '{env}' is given more than once")


def parse_release(tokens: list[str]) -> tuple[Release, ReleaseArgs]:
    """Parse the release flags and read the files (Kuberpult's ``ParseArgs``).

    :raises UsageError: with Kuberpult's wrapping of the message.
    """
    try:
        args = read_release_args(tokens)
    except UsageError as error:
        raise UsageError(f"error while reading command line arguments, error: {error}") from None
    parsed = args.parsed
    manifests: dict[str, bytes] = {}
    signatures: dict[str, bytes] = {}
    try:
        for index, env in enumerate(parsed.all("environment")):
            manifests[env] = _read(parsed.all("manifest")[index], "manifest")
            if not args.unsigned:
                signatures[env] = _read(parsed.all("signature")[index], "signature")
    except UsageError as error:
        raise UsageError(f"error while creating /release endpoint params, error: {error}") from None
    version, revision = parsed.first("version"), parsed.first("revision")
    release = Release(
        application=parsed.all("application")[0],
        manifests=manifests,
        signatures=signatures,
        team=parsed.first("team"),
        source_commit_id=parsed.first("source_commit_id"),
        previous_commit_id=parsed.first("previous_commit_id"),
        source_author=parsed.first("source_author"),
        source_message=parsed.first("source_message"),
        version=int(version) if version is not None else None,
        revision=int(revision) if revision is not None else None,
        display_version=parsed.first("display_version"),
        ci_link=parsed.first("ci_link"),
        prepublish=parsed.flag("prepublish"),
    )
    return release, args


def _read(path: str, kind: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"error while reading the {kind} file {path}, error: {error}") from None


# -- running ---------------------------------------------------------------------------------


def run(argv: list[str], environ: Mapping[str, str]) -> int:
    """Run the client; return the exit code."""
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
    if command in UNSUPPORTED:
        log(
            f"the subcommand {command} is not supported: kuberpult-lite's server has no "
            "endpoint for it"
        )
        return USAGE
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
        dex_token = client.fetch_client_credentials_token(
            args.oauth_token_url, client_id, secret, environ.get("KUBERPULT_OAUTH_AUDIENCE")
        )
    return Connection(
        url=args.url,
        author_name=args.author_name,
        author_email=args.author_email,
        client_uuid=args.client_uuid,
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

_LOCKS = {
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
}


def lock_command(command: str) -> Callable[[Connection, list[str]], int]:
    """The handler of one lock subcommand."""
    method, required, template = _LOCKS[command]
    creating = method == "PUT"
    optional = ("message", "ci_link", "suggested_lifetime") if creating else ()

    def handler(connection: Connection, tokens: list[str]) -> int:
        try:
            values = _lock_args(tokens, required, optional, team_lock="team" in required)
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
            path = template.format(**{k: quote(v, safe="") for k, v in values.items()})
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
    tokens: list[str], required: tuple[str, ...], optional: tuple[str, ...], *, team_lock: bool
) -> dict[str, str]:
    try:
        parsed = goflags.parse(tokens, set(required) | set(optional), set(), set())
    except goflags.FlagError as error:
        raise UsageError(f"error while parsing command line arguments, error: {error}") from None
    if parsed.rest:
        raise UsageError(f'these arguments are not recognised: "{" ".join(parsed.rest)}"')
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
    if "ci_link" in values and not _REQUEST_URI.fullmatch(values["ci_link"]):
        raise UsageError(f"provided invalid --ci_link value '{values['ci_link']}'")
    lifetime = values.get("suggested_lifetime")
    if lifetime is not None and not _LIFETIME.fullmatch(lifetime):
        raise UsageError(
            f"provided invalid --suggested_lifetime value '{lifetime}', it must match "
            "^[1-9][0-9]*(h|d|w)$"
        )
    return values


_HANDLERS: dict[str, Callable[[Connection, list[str]], int]] = {
    "release": release_command,
    **{command: lock_command(command) for command in _LOCKS},
}


def main() -> None:
    """Console entry point."""
    sys.exit(run(sys.argv[1:], os.environ))
