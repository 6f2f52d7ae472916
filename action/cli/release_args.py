"""The ``release`` subcommand's flags: Kuberpult's rules, in Kuberpult's order, with its texts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from action.cli import goflags
from action.cli.common import REQUEST_URI
from action.cli.common import UsageError
from action.cli.common import parse_subcommand
from action.client import Release

_SHA1 = re.compile(r"[0-9a-fA-F]{40}")
_AUTHOR = re.compile(r"[^<\n]+( <[^@\n]+@[^>\n]+>)?")
_FULL_SHA = "must be assigned a complete SHA1 commit hash in hexadecimal"


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
RELEASE_HELP = {
    "application": "the application's name (exactly once)",
    "environment": "an environment; each is followed by its --manifest (at least once)",
    "manifest": "the manifest file of the --environment just before it",
    "signature": "the detached signature of the --manifest just before it (unless "
    "--skip_signatures or --use_dex_auth)",
    "skip_signatures": "send no signatures",
    "use_dex_auth": "authenticate with KUBERPULT_DEX_ACCESS_TOKEN instead of signatures",
    "team": "the team that owns the application (at most once)",
    "source_commit_id": "the full 40-character SHA-1 of the source commit",
    "previous_commit_id": "the full SHA-1 of the previous source commit (needs --source_commit_id)",
    "source_author": "the source commit's author: 'Name' or 'Name <mail@host>'",
    "source_message": "the source commit's message",
    "version": "the release version, a positive integer (omitted: the server assigns the next)",
    "revision": "the release revision, a positive integer",
    "display_version": "a version to show, at most 15 bytes (not empty)",
    "ci_link": "a link to the CI run (an absolute URL)",
    "prepublish": "publish without deploying (only with --use_dex_auth)",
    "dry-run": "print the diff against the newest release instead of releasing",
}


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
    parsed = parse_subcommand(
        tokens, _RELEASE_STRINGS, _RELEASE_INTS, _RELEASE_BOOLS, title="release", help=RELEASE_HELP
    )
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
        if not REQUEST_URI.fullmatch(link):
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
