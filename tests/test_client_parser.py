"""The client's parser against Kuberpult's own parser test tables (reference section 5)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from action.cli.common import UsageError
from action.cli.main import parse_global
from action.cli.release_args import parse_release
from action.cli.release_args import read_release_args

C40 = "0123abcdef0123abcdef0123abcdef0123abcdef"
A40 = "a" * 40
S = "--skip_signatures"
B = f"{S} --application potato --environment production --manifest manifest-file.yaml"
B_PLUS = (
    f"{B} --team potato-team --source_commit_id {C40} --previous_commit_id {A40} "
    '--source_author potato@tomato.com --source_message "test source message"'
)
TRIPLE = "--environment {e} --manifest m-{e}.yaml --signature s-{e}.gpg"

# 5.1 TestReadArgs: (args, expected error or None)
READ_ARGS = [
    (f"{S} potato tomato", 'these arguments are not recognised: "potato tomato"'),
    (
        f"{S} --potato tomato",
        "error while parsing command line arguments, error: flag provided but not defined: -potato",
    ),
    (S, "the --application arg must be set exactly once"),
    (
        f"{S} --application potato",
        "the args --environment and --manifest must be set at least once",
    ),
    (
        f"{S} --application potato --environment production",
        "all --environment args must have a --manifest arg set immediately afterwards",
    ),
    (B, None),
    (f"{B} --environment development --manifest manifest2-file.yaml", None),
    (
        f"{B} --manifest something-else.yaml",
        "all --manifest args must be set immediately after an --environment arg",
    ),
    (
        "--application potato --environment production --manifest manifest-file.yaml "
        "--signature signature-file.gpg",
        None,
    ),
    (
        f"{B} --signature signature-file.gpg",
        "--signature args are not allowed when --skip_signatures or use_dex_auth are set",
    ),
    (
        "--application potato "
        + TRIPLE.format(e="production")
        + " "
        + TRIPLE.format(e="development"),
        None,
    ),
    (
        "--application potato --environment production --manifest m.yaml",
        "all --manifest args must have a --signature arg set immediately afterwards, unless "
        "--skip_signatures is set",
    ),
    (
        "--application potato --environment production --manifest m.yaml --signature s1 "
        "--signature s2",
        "all --signature args must be set immediately after a --manifest arg",
    ),
    (f"{B} --team potato-team", None),
    (f"{B} --team potato-team --team tomato-team", "the --team arg must be set at most once"),
    (f"{B} --team potato-team --source_commit_id {C40}", None),
    (
        f"{B} --team potato-team --source_commit_id potato-commit",
        "the --source_commit_id arg must be assigned a complete SHA1 commit hash in hexadecimal",
    ),
    (
        f"{B} --source_commit_id {C40} --source_commit_id {C40}",
        "the --source_commit_id arg must be set at most once",
    ),
    (f"{B} --source_commit_id {C40} --previous_commit_id {A40}", None),
    (
        f"{B} --team potato-team --previous_commit_id {A40}",
        "the --previous_commit_id arg can be set only if --source_commit_id is set",
    ),
    (
        f"{B} --source_commit_id {C40} --previous_commit_id {A40} --previous_commit_id {'b' * 40}",
        "the --previous_commit_id arg must be set at most once",
    ),
    (
        f"{B} --source_commit_id {C40} --previous_commit_id potato",
        "the --previous_commit_id arg must be assigned a complete SHA1 commit hash in hexadecimal",
    ),
    (f"{B} --source_author potato@tomato.com", None),
    (
        f"{B} --source_author potato@tomato.com --source_author a@b.c",
        "the --source_author arg must be set at most once",
    ),
    (B_PLUS, None),
    (
        f'{B_PLUS} --source_message "another test source message"',
        "the --source_message arg must be set at most once",
    ),
    (f"{B_PLUS} --version 1234", None),
    (f"{B_PLUS} --version 123 --version 456", "the --version arg must be set at most once"),
    (
        f"{B_PLUS} --version abc",
        'error while parsing command line arguments, error: invalid value "abc" for flag -version: '
        'the provided value "abc" is not an integer',
    ),
    (f"{B_PLUS} --version -123", "the --version arg value must be positive"),
    (f"{B_PLUS} --version 1234 --revision 10", None),
    (
        f"{B_PLUS} --version 123 --revision 456 --revision 10",
        "the --revision arg must be set at most once",
    ),
    (
        f"{B_PLUS} --version 123 --revision abc",
        'error while parsing command line arguments, error: invalid value "abc" for flag '
        '-revision: the provided value "abc" is not an integer',
    ),
    (f"{B_PLUS} --version 123 --revision -123", "the --revision arg value must be positive"),
    (f"{B_PLUS} --version 1234 --display_version 1.23.4", None),
    (
        f"{B_PLUS} --version 123 --display_version 1.23 --display_version a.bc",
        "the --display_version arg must be set at most once",
    ),
    (
        f"{B_PLUS} --version 123 --display_version {'x' * 45}",
        "the --display_version arg must be at most 15 characters long",
    ),
    (f"{B} --version 1234 --ci_link https://localhost:8000", None),
    (
        f"{B} --version 1234 --ci_link https//localhost:8000",
        "provided invalid --ci_link value 'https//localhost:8000'",
    ),
    (
        f"{B} --ci_link https://a.b --ci_link https://c.d",
        "the --ci_link arg must be set at most once",
    ),
    (f"{B} --use_dex_auth", None),
    (f"{B} --prepublish", None),
]


@pytest.mark.parametrize(("args", "error"), READ_ARGS, ids=[str(i + 1) for i in range(42)])
def test_read_args_table(args: str, error: str | None) -> None:
    if error is None:
        read_release_args(shlex.split(args))
        return
    with pytest.raises(UsageError) as caught:
        read_release_args(shlex.split(args))
    assert str(caught.value) == error


def test_read_args_values() -> None:
    parsed = read_release_args(
        shlex.split(
            f"{B_PLUS} --version 1234 --display_version 1.23.4 --environment development "
            "--manifest m2.yaml"
        )
    ).parsed
    assert parsed.all("environment") == ["production", "development"]
    assert parsed.all("manifest") == ["manifest-file.yaml", "m2.yaml"]
    assert parsed.all("source_message") == ["test source message"]
    assert parsed.flag("skip_signatures")


# Beyond Kuberpult: spellings Go's raw-token pairing check never saw now go through it.
@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            f"{S} --application a --environment=production",
            "all --environment args must have a --manifest arg set immediately afterwards",
        ),
        (
            f"{S} --application a -environment production -manifest m.yaml -environment dev",
            "all --environment args must have a --manifest arg set immediately afterwards",
        ),
        (
            "--application a --environment=production --manifest=m.yaml",
            "all --manifest args must have a --signature arg set immediately afterwards, unless "
            "--skip_signatures is set",
        ),
        (
            f"{S} --application a --environment p --manifest m --display_version ''",
            "the --display_version arg must not be empty",
        ),
        (
            f"{S} --application a --environment p --manifest m --environment p --manifest n",
            "the environment 'p' is given more than once",
        ),
    ],
)
def test_equals_and_single_dash_forms_are_checked(args: str, error: str) -> None:
    with pytest.raises(UsageError) as caught:
        read_release_args(shlex.split(args))
    assert str(caught.value) == error


def test_parse_args_reads_the_files(tmp_path: Path) -> None:
    for name, content in (
        ("production-manifest.yaml", b"prod: 1"),
        ("development-manifest.yaml", b"dev: 1"),
        ("production-signature.gpg", b"sig-p"),
        ("development-signature.gpg", b"sig-d"),
    ):
        (tmp_path / name).write_bytes(content)

    def args(text: str) -> list[str]:
        return [
            a if not a.endswith((".yaml", ".gpg")) else str(tmp_path / a) for a in shlex.split(text)
        ]

    release, _ = parse_release(
        args(
            f"{S} --application potato --environment production --manifest production-manifest.yaml"
        )
    )
    assert release.application == "potato"
    assert release.manifests == {"production": b"prod: 1"}
    assert release.signatures == {}
    release, _ = parse_release(
        args(
            "--application potato --environment production --manifest production-manifest.yaml "
            "--signature production-signature.gpg --environment development --manifest "
            "development-manifest.yaml --signature development-signature.gpg"
        )
    )
    assert release.signatures == {"production": b"sig-p", "development": b"sig-d"}
    release, parsed = parse_release(
        args(
            "--use_dex_auth --application potato --environment production --manifest "
            "production-manifest.yaml --dry-run --ci_link https://localhost:8000"
        )
    )
    assert release.signatures == {}
    assert release.ci_link == "https://localhost:8000"
    assert parsed.parsed.flag("dry-run")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            f"{S} --application potato",
            "error while reading command line arguments, error: the args --environment and "
            "--manifest must be set at least once",
        ),
        (
            f"{S} --application",
            "error while reading command line arguments, error: error while parsing command line "
            "arguments, error: flag needs an argument: -application",
        ),
        (
            "--use_dex_auth --application p --environment e --manifest m --signature s",
            "error while reading command line arguments, error: --signature args are not allowed "
            "when --skip_signatures or use_dex_auth are set",
        ),
        (
            f"{S} --application p --environment e --manifest /nonexistent/m.yaml",
            "error while creating /release endpoint params, error: error while reading the "
            "manifest file /nonexistent/m.yaml, error: ",
        ),
    ],
)
def test_parse_args_errors(args: str, error: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_release(shlex.split(args))
    assert str(caught.value).startswith(error)


P = (
    "error while parsing command line arguments, error: error while reading command line "
    "arguments, error: "
)
C = "error while creating kuberpult client parameters, error: "


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ("", C + "the --url arg must be set exactly once"),
        ("--potato tomato", P + "flag provided but not defined: -potato"),
        ("--url something.somewhere --potato tomato", P + "flag provided but not defined: -potato"),
        ("--url a --url b", C + "the --url arg must be set exactly once"),
        (
            "--url x --author_name a --author_name b",
            C + "the --author_name arg must be set at most once",
        ),
        (
            "--url x --author_email a --author_email b",
            C + "the --author_email arg must be set at most once",
        ),
        (
            "--url x --client_uuid a --client_uuid b",
            C + "the --client_uuid arg must be set at most once",
        ),
        ("--url x --retries -1 release", C + "--retries arg value must be positive"),
        ("--url x --retries 0 release", C + "--retries arg value must be positive"),
        ("--url x --timeout -1 release", C + "--timeout arg value must be positive"),
    ],
)
def test_global_flag_errors(args: str, error: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_global(args.split())
    assert str(caught.value) == error


def test_global_flag_values() -> None:
    defaults = parse_global("--url something.somewhere".split())
    assert (defaults.url, defaults.retries, defaults.timeout, defaults.rest) == (
        "something.somewhere",
        3,
        180,
        [],
    )
    assert parse_global("--url s potato --tomato".split()).rest == ["potato", "--tomato"]
    given = parse_global(
        "--url s --author_name john --author_email j@x --client_uuid 123456-1234 --retries 10 "
        "--timeout 7200 subcommand --arg1 val1".split()
    )
    assert (given.author_name, given.author_email, given.client_uuid) == (
        "john",
        "j@x",
        "123456-1234",
    )
    assert (given.retries, given.timeout) == (10, 7200)
    assert given.rest == ["subcommand", "--arg1", "val1"]
