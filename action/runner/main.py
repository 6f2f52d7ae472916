"""The GitHub Action: collect metadata, sign the manifests, release, report.

Run by ``action.yml`` as ``python3 -I -S action/launch.py``; every input arrives as
``INPUT_<NAME>`` through the step's ``env:``.

Over 250 lines: inputs, metadata, signing, the call and the step summary are the Action's one
sequence, read top to bottom.
"""

from __future__ import annotations

import glob
import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

from action import client
from action import oauth
from action import transport
from action.client import Connection
from action.client import Release
from action.client import RequestFailed
from action.envelope import envelope
from action.runner import github
from action.runner import metadata
from action.runner import signing
from action.runner import train
from action.runner.github import ActionFailure

TEXT_LIMIT = 1000  # the server's limit for source_author / source_message, in bytes
SECRET_INPUTS = ("gpg-private-key", "gpg-passphrase", "token", "oauth-client-secret")


def read_manifests(spec: str, cwd: Path) -> dict[str, bytes]:
    """``ENV=PATH`` lines (globs allowed; several files become one multi-document manifest)."""
    manifests: dict[str, bytes] = {}
    for number, raw in enumerate(spec.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        env, sep, pattern = (part.strip() for part in line.partition("="))
        if not sep or not env or not pattern:
            raise ActionFailure(f"manifests line {number} ({line!r}) is not ENV=PATH")
        if env in manifests:
            raise ActionFailure(f"manifests names environment {env!r} twice")
        paths = sorted(glob.glob(pattern, root_dir=cwd, recursive=True))
        files = [cwd / p for p in paths if (cwd / p).is_file()]
        if not files:
            raise ActionFailure(f"manifests: no file matches {pattern!r} for environment {env!r}")
        if len(files) == 1:
            manifests[env] = files[0].read_bytes()
        else:
            parts = [f.read_bytes().rstrip(b"\n") for f in files]
            manifests[env] = b"\n---\n".join(parts) + b"\n"
    if not manifests:
        raise ActionFailure("the manifests input is empty; give ENV=PATH lines")
    return manifests


def _limit(text: str, limit: int = TEXT_LIMIT) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "..."


def _flag(environ: Mapping[str, str], name: str) -> bool:
    value = github.read_input(environ, name, "false").lower()
    if value not in ("true", "false"):
        raise ActionFailure(f"input {name} must be true or false, got {value!r}")
    return value == "true"


def _number(environ: Mapping[str, str], name: str, default: str) -> int:
    value = github.read_input(environ, name, default) or default
    if not value.isdigit():
        raise ActionFailure(f"input {name} must be a whole number, got {value!r}")
    return int(value)


def _client_uuid(environ: Mapping[str, str], application: str) -> str:
    """The same id for every attempt of this job's release (retries and re-runs of the job),
    so the server answers a resend with the release it already has."""
    job = "/".join(
        environ.get(name, "") for name in ("GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_JOB")
    )
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kuberpult-lite:{job}:{application}"))


def _token(environ: Mapping[str, str]) -> str | None:
    """The bearer token: the token input, a GitHub OIDC token, or a client-credentials one."""
    token = github.read_input(environ, "token") or None
    if _flag(environ, "github-oidc"):
        request_url = environ.get("ACTIONS_ID_TOKEN_REQUEST_URL")
        request_token = environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
        github.mask(request_token)
        if not request_url or not request_token:
            raise ActionFailure(
                "github-oidc needs the job permission 'id-token: write' (the runner did not "
                "offer ACTIONS_ID_TOKEN_REQUEST_URL)"
            )
        # The server requires its own public URL as the audience by default (a shared default
        # audience is one every GitHub user can mint tokens for).
        audience = github.read_input(environ, "github-oidc-audience") or github.read_input(
            environ, "url"
        ).rstrip("/")
        try:
            response = transport.request(
                "GET",
                request_url,
                params={"audience": audience},
                timeout=30,
                headers={"Authorization": f"Bearer {request_token}"},
            )
        except transport.TransportError as error:
            raise ActionFailure(f"the GitHub OIDC token request failed: {error}") from None
        if response.status != 200:
            raise ActionFailure(f"GitHub refused the OIDC token request: {response.status}")
        try:
            token = str(json.loads(response.body)["value"])
        except (ValueError, KeyError, TypeError):
            raise ActionFailure("GitHub's OIDC token answer has no token in it") from None
    token_url = github.read_input(environ, "oauth-token-url")
    if token_url:
        try:
            token = oauth.fetch_client_credentials_token(
                token_url,
                github.read_input(environ, "oauth-client-id"),
                github.read_input(environ, "oauth-client-secret"),
                github.read_input(environ, "oauth-audience") or None,
            )
        except Exception as error:  # noqa: BLE001 - any failure here means no token
            raise ActionFailure(f"no token from {token_url}: {error}") from None
    github.mask(token)
    return token


def _run_link(environ: Mapping[str, str]) -> str:
    """This workflow run's page, the default CI link."""
    if not environ.get("GITHUB_RUN_ID"):
        return ""
    return (
        f"{environ.get('GITHUB_SERVER_URL', 'https://github.com')}/"
        f"{environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{environ['GITHUB_RUN_ID']}"
    )


def _connection(
    environ: Mapping[str, str], url: str, token: str | None, purpose: str
) -> Connection:
    actor = environ.get("GITHUB_ACTOR")
    return Connection(
        url=url,
        author_name=actor or None,
        author_email=f"{actor}@users.noreply.github.com" if actor else None,
        retries=_number(environ, "retries", "3"),
        timeout=float(_number(environ, "timeout", "180")),
        dex_token=token,
        client_uuid=_client_uuid(environ, purpose),
    )


def run(environ: Mapping[str, str]) -> None:
    """The whole action. :raises ActionFailure: with the reason for the job log."""
    for name in SECRET_INPUTS:
        github.mask(github.read_input(environ, name))
    url = github.read_input(environ, "url")
    mode = github.read_input(environ, "mode") or "release"
    if mode not in ("release", "release-train"):
        raise ActionFailure(f"input mode must be release or release-train, got {mode!r}")
    if mode == "release-train":
        if not url:
            raise ActionFailure("the input url is required")
        connection = _connection(environ, url, _token(environ), "release-train")
        train.run(environ, connection, github.read_input(environ, "ci-link") or _run_link(environ))
        return
    application = github.read_input(environ, "application")
    if not url or not application:
        raise ActionFailure("the inputs url and application are required")
    cwd = Path(github.read_input(environ, "working-directory") or ".").resolve()
    with github.group("Collect metadata"):
        meta = metadata.collect(cwd, environ)
        version = _number(environ, "version", str(meta.commit_count))
        print(f"commit {meta.commit}, previous {meta.previous or '-'}, version {version}")
    manifests = read_manifests(github.read_input(environ, "manifests"), cwd)
    signatures: dict[str, bytes] = {}
    if not _flag(environ, "skip-signatures"):
        key = github.read_input(environ, "gpg-private-key")
        if not key:
            raise ActionFailure("gpg-private-key is required unless skip-signatures is true")
        temp = Path(environ.get("RUNNER_TEMP") or "/tmp")  # noqa: S108 - outside a runner only
        with (
            github.group("Sign manifests"),
            signing.signer(key, github.read_input(environ, "gpg-passphrase"), temp) as (
                signer,
                fingerprint,
            ),
        ):
            print(f"signing with key {fingerprint}")
            mode = github.read_input(environ, "signature-mode") or "bytes"
            if mode not in ("bytes", "envelope"):
                raise ActionFailure("signature-mode must be 'bytes' or 'envelope'")
            signatures = {
                # Envelope: the signature names this application, environment and version, so
                # it cannot be replayed for another release (the server's envelope mode).
                env: signer.sign(
                    envelope(application, env, version, content) if mode == "envelope" else content,
                    fingerprint,
                )
                for env, content in manifests.items()
            }
    token = _token(environ)
    run_link = _run_link(environ)
    release = Release(
        application=application,
        manifests=manifests,
        signatures=signatures,
        team=github.read_input(environ, "team") or None,
        source_commit_id=meta.commit,
        previous_commit_id=meta.previous,
        source_author=_limit(meta.author),
        source_message=_limit(meta.message) or None,
        version=version,
        display_version=github.read_input(environ, "display-version") or None,
        ci_link=github.read_input(environ, "ci-link") or run_link or None,
    )
    connection = _connection(environ, url, token, application)
    # A signature-only server checks signatures on the legacy endpoint; with a token, the API.
    path = "release" if signatures and token is None else "api/release"
    github.set_output("commit-sha", meta.commit, environ)
    github.set_output("previous-commit-sha", meta.previous or "", environ)
    github.set_output("version", str(version), environ)
    with github.group(f"Release {application} version {version}"):
        try:
            answer = client.send(
                connection,
                "POST",
                path,
                files=release.parts,
                headers=connection.headers(uuid=True),
                log=print,
            )
        except RequestFailed as error:
            status = str(error.answer.status) if error.answer else "none"
            github.set_output("response-status", status, environ)
            _summary(environ, release, status, error.answer.body if error.answer else str(error))
            raise ActionFailure(
                f"the release was not accepted: {error}" + _conflict_diff(error)
            ) from None
    released = answer.headers.get("X-Release-Version", str(version))
    release_url = (
        connection.endpoint(answer.headers["Location"]) if "Location" in answer.headers else ""
    )
    github.set_output("version", released, environ)
    github.set_output("response-status", str(answer.status), environ)
    github.set_output("release-url", release_url, environ)
    _summary(environ, release, str(answer.status), answer.body, answer.headers)
    print(f"released version {released} of {application}: {answer.status} {answer.body.strip()}")


def _conflict_diff(error: RequestFailed) -> str:
    body = error.answer.json() if error.answer else None
    different = body.get("AlreadyExistsDifferent") if isinstance(body, dict) else None
    if isinstance(different, dict) and different.get("diff"):
        return "\n" + str(different["diff"])
    return ""


def _summary(
    environ: Mapping[str, str],
    release: Release,
    status: str,
    body: str,
    headers: Mapping[str, str] | None = None,
) -> None:
    headers = headers or {}
    commit = headers.get("X-Manifest-Commit", "")
    rows = [
        ("Application", release.application),
        ("Version", headers.get("X-Release-Version", str(release.version))),
        ("Environments", ", ".join(sorted(release.manifests))),
        ("Source commit", f"`{release.source_commit_id}`"),
        ("Signed", "yes" if release.signatures else "no"),
        ("Server answer", f"{status} `{body.strip()[:300]}`"),
    ]
    if commit:
        rows.append(("Manifest-repo commit", f"`{commit}`"))
    table = "\n".join(f"| {name} | {value.replace('|', '&#124;')} |" for name, value in rows)
    github.append_summary(f"### kuberpult-lite release\n\n| | |\n|---|---|\n{table}\n", environ)


def main() -> None:
    """Entry point: run, and turn any failure into an ``::error::`` and exit 1."""
    try:
        run(os.environ)
    except ActionFailure as failure:
        github.die(str(failure))
