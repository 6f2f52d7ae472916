"""The GitHub Action run the way the runner runs it, against a live server and a bare remote."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.action_runner import CompositeAction
from testkit.action_runner import parse_file_command
from testkit.remote import Remote
from testkit.remote import git
from testkit.server import ROOT
from testkit.server import Server
from testkit.server import stop_gpg_agent
from testkit.server import unique_app
from tests.test_action_signing import PASSPHRASE
from tests.test_action_signing import SecretKey
from tests.test_action_signing import make_secret_key


@pytest.fixture(scope="session")
def action(tmp_path_factory: pytest.TempPathFactory) -> CompositeAction:
    """The repository's action.yml; one RUNNER_TEMP, so its venv is installed once."""
    return CompositeAction(ROOT, tmp_path_factory.mktemp("runner-temp"))


@pytest.fixture(scope="module")
def ci_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecretKey]:
    key = make_secret_key(tmp_path_factory.mktemp("action-key"))
    yield key
    stop_gpg_agent(key.home)


@pytest.fixture
def service(tmp_path: Path) -> tuple[Path, list[str]]:
    """The service's checkout: three commits, manifests under deploy/."""
    repo = tmp_path / "workspace"
    repo.mkdir()
    git("init", "-q", "--initial-branch=main", cwd=repo)
    shas = []
    for index in range(3):
        (repo / "deploy").mkdir(exist_ok=True)
        (repo / "deploy" / "dev.yaml").write_text(f"kind: Deployment\nrevision: {index}\n")
        (repo / "deploy" / "svc.yaml").write_text("kind: Service\n")
        git("add", "-A", cwd=repo)
        git("commit", "-q", "-m", f"change {index}\n\nwith $(shell) and 'quotes'", cwd=repo)
        shas.append(git("rev-parse", "HEAD", cwd=repo).strip())
    return repo, shas


@pytest.fixture
def signed_server(start_server, bare_remote: Remote, ci_key: SecretKey, tmp_path: Path) -> Server:
    keyring = tmp_path / "keyring.asc"
    keyring.write_bytes(ci_key.public)
    # Open reads: a 409 shows the stored release's diff only to a caller who may read it, and
    # a signature alone is no read credential (tests/security/test_release_credentials.py).
    server: Server = start_server(
        bare_remote, KUBERPULT_PGP_KEY_RING_PATH=str(keyring), KUBERPULT_OPEN_READS="true"
    )
    return server


def push_event(shas: list[str]) -> dict[str, object]:
    return {"before": shas[0], "after": shas[-1], "forced": False}


def test_a_signed_release_from_a_push(
    action: CompositeAction,
    signed_server: Server,
    bare_remote: Remote,
    service: tuple[Path, list[str]],
    ci_key: SecretKey,
) -> None:
    repo, shas = service
    app = unique_app()
    run = action.run(
        {
            "url": signed_server.url,
            "application": app,
            "manifests": "development=deploy/*.yaml\n",
            "gpg-private-key": ci_key.armored,
            "gpg-passphrase": PASSPHRASE,
            "team": "payments",
            "display-version": "v1.0.2",
        },
        workspace=repo,
        event=push_event(shas),
        env={
            "GITHUB_SHA": shas[-1],
            "GITHUB_RUN_ID": "42",
            "GITHUB_REPOSITORY": "acme/svc",
            "GITHUB_ACTOR": "octocat",
        },
    )
    assert run.outcome == "success", run.log
    assert run.outputs == {
        "version": "3",
        "commit-sha": shas[-1],
        "previous-commit-sha": shas[0],
        "response-status": "201",
        "release-url": f"{signed_server.url}/api/applications/{app}/releases/3",
        "train-commit": "",
        "deployed": "",
    }
    base = f"applications/{app}/releases/3"
    assert bare_remote.read(f"{base}/source_commit_id") == shas[-1].encode()
    assert bare_remote.read(f"{base}/source_message") == b"change 2\n\nwith $(shell) and 'quotes'"
    manifest = bare_remote.read(f"{base}/environments/development/manifests.yaml")
    assert manifest == b"kind: Deployment\nrevision: 2\n---\nkind: Service\n"
    assert bare_remote.log("%an <%ae>")[0] == "octocat <octocat@users.noreply.github.com>"
    assert f"| Application | {app} |" in run.summary
    assert "| Version | 3 |" in run.summary
    assert "| Signed | yes |" in run.summary
    assert "::group::Sign manifests" in run.log
    # Secrets are masked before anything could print them, and never printed otherwise.
    assert f"::add-mask::{PASSPHRASE}" in run.log
    assert run.log.count(PASSPHRASE) == 1


def test_a_conflicting_release_fails_with_the_diff(
    action: CompositeAction,
    signed_server: Server,
    bare_remote: Remote,
    service: tuple[Path, list[str]],
    ci_key: SecretKey,
) -> None:
    repo, shas = service
    app = unique_app()
    inputs = {
        "url": signed_server.url,
        "application": app,
        "version": "7",
        "manifests": "development=deploy/dev.yaml",
        "gpg-private-key": ci_key.armored,
        "gpg-passphrase": PASSPHRASE,
    }
    assert action.run(inputs, workspace=repo, env={"GITHUB_SHA": shas[-1]}).outcome == "success"
    (repo / "deploy" / "dev.yaml").write_text("kind: Deployment\nrevision: 99\n")
    head = bare_remote.head()
    run = action.run(inputs, workspace=repo, env={"GITHUB_SHA": shas[-1]})
    assert run.outcome == "failure"
    assert run.outputs["response-status"] == "409"
    assert "::error title=kuberpult-lite release::the release was not accepted" in run.log
    assert "-revision: 2%0A+revision: 99" in run.log  # the diff, escaped into one annotation
    assert "failed" in run.summary
    assert bare_remote.head() == head


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"gpg-private-key": "this is not a key"}, "gpg-private-key is neither"),
        ({"manifests": "development=deploy/missing.yaml"}, "no file matches"),
        ({"gpg-private-key": ""}, "gpg-private-key is required unless skip-signatures"),
        ({"skip-signatures": "maybe"}, "skip-signatures must be true or false"),
    ],
)
def test_bad_inputs_fail_with_an_annotation(
    action: CompositeAction,
    signed_server: Server,
    bare_remote: Remote,
    service: tuple[Path, list[str]],
    ci_key: SecretKey,
    inputs: dict[str, str],
    message: str,
) -> None:
    repo, shas = service
    head = bare_remote.head()
    run = action.run(
        {
            "url": signed_server.url,
            "application": unique_app(),
            "manifests": "development=deploy/dev.yaml",
            "gpg-private-key": ci_key.armored,
            "gpg-passphrase": PASSPHRASE,
            **inputs,
        },
        workspace=repo,
        env={"GITHUB_SHA": shas[-1]},
    )
    assert run.outcome == "failure"
    assert message in run.log
    assert "::error " in run.log
    assert bare_remote.head() == head


def test_unsigned_release_with_a_token_and_a_pull_request(
    action: CompositeAction,
    start_server,
    bare_remote: Remote,
    service: tuple[Path, list[str]],
    tmp_path: Path,
) -> None:
    from tests.oidc_provider import Provider

    repo, shas = service
    provider = Provider("/dex")
    try:
        policy = tmp_path / "policy.csv"
        policy.write_text("p, role:ci, CreateRelease, *:*, *, allow\ng, ci, role:ci\n")
        server = start_server(
            bare_remote,
            KUBERPULT_API_ENABLE_DESPITE_NO_AUTH="false",
            KUBERPULT_DEX_ENABLED="true",
            KUBERPULT_DEX_ISSUER_URL=provider.issuer,
            KUBERPULT_DEX_CLIENT_ID="kuberpult",
            KUBERPULT_DEX_RBAC_POLICY_PATH=str(policy),
        )
        token = provider.token(email="ci@example.com", name="CI", groups="ci")
        app = unique_app()
        run = action.run(
            {
                "url": server.url,
                "application": app,
                "manifests": "staging=deploy/dev.yaml",
                "skip-signatures": "true",
                "token": token,
            },
            workspace=repo,
            event_name="pull_request",
            event={"pull_request": {"head": {"sha": shas[1]}}},
            env={"GITHUB_SHA": shas[-1]},
        )
    finally:
        provider.stop()
    assert run.outcome == "success", run.log
    assert run.outputs["commit-sha"] == shas[1]
    assert run.outputs["version"] == "2"
    assert bare_remote.read(f"applications/{app}/releases/2/source_commit_id") == shas[1].encode()
    assert token not in run.log.replace(f"::add-mask::{token}", "")


def test_the_output_file_format() -> None:
    parsed = parse_file_command("a=1\nb<<EOF\nline 1\nline 2\nEOF\nc=x=y\n")
    assert parsed == {"a": "1", "b": "line 1\nline 2", "c": "x=y"}


def test_github_oidc_needs_no_stored_secret(
    action: CompositeAction,
    start_server,
    bare_remote: Remote,
    service: tuple[Path, list[str]],
    tmp_path: Path,
) -> None:
    """The job's own OIDC token: a stand-in for GitHub's token service (the only fake here)
    answers the runner's token request the way GitHub does, with a token minted by a real OIDC
    provider carrying GitHub's claims; the server checks it against its policy."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler
    from http.server import ThreadingHTTPServer
    from urllib.parse import parse_qs
    from urllib.parse import urlsplit

    from tests.oidc_provider import Provider

    repo, shas = service
    github = Provider("")
    audiences: list[str] = []

    class TokenService(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's handler name
            if self.headers.get("Authorization") != "Bearer runner-request-token":
                self.send_response(401)
                self.end_headers()
                return
            audience = parse_qs(urlsplit(self.path).query)["audience"][0]
            audiences.append(audience)
            token = github.token(
                audience=audience,
                repository="acme/svc",
                ref="refs/heads/main",
                sub="repo:acme/svc:ref:refs/heads/main",
            )
            body = json.dumps({"value": token}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    token_service = ThreadingHTTPServer(("127.0.0.1", 0), TokenService)
    threading.Thread(target=token_service.serve_forever, daemon=True).start()
    try:
        policy = tmp_path / "github.json"
        policy.write_text(
            '{"rules": [{"repository": "acme/svc", "ref": "refs/heads/main",'
            ' "applications": ["svc"], "environments": ["development"]}]}'
        )
        server = start_server(
            bare_remote,
            KUBERPULT_API_ENABLE_DESPITE_NO_AUTH="false",
            KUBERPULT_GITHUB_OIDC_POLICY_PATH=str(policy),
            KUBERPULT_GITHUB_OIDC_ISSUER=github.issuer,
            KUBERPULT_GITHUB_OIDC_AUDIENCE="https://kuberpult.acme.example",
        )
        env = {
            "GITHUB_SHA": shas[-1],
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"http://127.0.0.1:{token_service.server_port}/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runner-request-token",
        }
        inputs = {
            "url": server.url,
            "application": "svc",
            "skip-signatures": "true",
            "manifests": "development=deploy/dev.yaml",
            "github-oidc": "true",
            "github-oidc-audience": "https://kuberpult.acme.example",
        }
        run = action.run(inputs, workspace=repo, env=env)
        assert run.outcome == "success", run.log
        assert audiences == ["https://kuberpult.acme.example"]
        assert bare_remote.exists("applications/svc/releases/3")
        # The same workflow may not release an application its policy does not name.
        other = action.run({**inputs, "application": "billing"}, workspace=repo, env=env)
        assert other.outcome == "failure"
        assert "403" in other.log and "acme/svc" in other.log
    finally:
        token_service.shutdown()
        token_service.server_close()
        github.stop()


def test_a_workspace_cannot_shadow_the_actions_code(
    tmp_path: Path,
    signed_server: Server,
    bare_remote: Remote,
    service: tuple[Path, list[str]],
    ci_key: SecretKey,
) -> None:
    # The workflow's checkout is the working directory of every step: a repository with its
    # own action package, or modules named like the ones the steps run, must not be imported.
    repo, shas = service
    trap = "raise SystemExit('the workspace was imported: {}')\n"
    for module in ("action/__init__.py", "action.py", "venv/__init__.py", "pip/__init__.py"):
        path = repo / module
        path.parent.mkdir(exist_ok=True)
        path.write_text(trap.format(module))
    (repo / "sitecustomize.py").write_text(trap.format("sitecustomize.py"))
    fresh = CompositeAction(ROOT, tmp_path / "runner-temp")  # the install step runs too
    app = unique_app()
    run = fresh.run(
        {
            "url": signed_server.url,
            "application": app,
            "manifests": "development=deploy/dev.yaml\n",
            "gpg-private-key": ci_key.armored,
            "gpg-passphrase": PASSPHRASE,
        },
        workspace=repo,
        event=push_event(shas),
        env={"GITHUB_SHA": shas[-1], "PYTHONPATH": str(repo)},
    )
    assert run.outcome == "success", run.log
    assert "the workspace was imported" not in run.log
    assert bare_remote.exists(f"applications/{app}/releases/3")


def test_envelope_signatures_from_the_action(
    action: CompositeAction,
    start_server,
    bare_remote: Remote,
    service: tuple[Path, list[str]],
    ci_key: SecretKey,
    tmp_path: Path,
) -> None:
    keyring = tmp_path / "keyring.asc"
    keyring.write_bytes(ci_key.public)
    server: Server = start_server(
        bare_remote, KUBERPULT_PGP_KEY_RING_PATH=str(keyring), KUBERPULT_SIGNATURE_MODE="envelope"
    )
    repo, shas = service
    inputs = {
        "url": server.url,
        "application": unique_app(),
        "manifests": "development=deploy/dev.yaml\n",
        "gpg-private-key": ci_key.armored,
        "gpg-passphrase": PASSPHRASE,
    }
    env = {"GITHUB_SHA": shas[-1]}
    bytes_run = action.run(inputs, workspace=repo, event=push_event(shas), env=env)
    assert bytes_run.outcome == "failure"  # this server takes envelope signatures only
    assert "envelope signatures only" in bytes_run.log
    run = action.run(
        {**inputs, "signature-mode": "envelope"}, workspace=repo, event=push_event(shas), env=env
    )
    assert run.outcome == "success", run.log
    assert run.outputs["response-status"] == "201"
    assert bare_remote.exists(f"applications/{inputs['application']}/releases/3")


def test_a_release_train_after_the_tests_passed(
    action: CompositeAction, start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    bare_remote.push_files(
        tmp_path,
        {
            "environments/dev/config.json": '{"upstream":{"latest":true}}',
            "environments/staging/config.json": '{"upstream":{"environment":"dev"}}',
        },
    )
    server = start_server(bare_remote)
    app = unique_app()
    assert server.release(app, {"dev": "a: 1\n", "staging": "a: 1\n"}).status_code == 201
    run = action.run(
        {"url": server.url, "mode": "release-train", "release-train-target": "staging"},
        workspace=tmp_path,
        event_name="workflow_dispatch",
        event={},
    )
    assert run.outcome == "success", run.log
    assert json.loads(run.outputs["deployed"]) == [
        {"environment": "staging", "application": app, "version": 1}
    ]
    assert run.outputs["train-commit"] == bare_remote.head()
    assert bare_remote.read(f"environments/staging/applications/{app}/version").endswith(b"/1")
    assert f"| staging | {app} | deployed 1 |" in run.summary
    # A target that does not exist fails the step with the server's reason.
    failed = action.run(
        {"url": server.url, "mode": "release-train", "release-train-target": "nowhere"},
        workspace=tmp_path,
        event_name="workflow_dispatch",
        event={},
    )
    assert failed.outcome == "failure"
    assert "nowhere" in failed.log and failed.outputs["response-status"] == "404"


def test_a_machine_token_by_the_oauth_inputs(
    action: CompositeAction,
    start_server,
    bare_remote: Remote,
    service: tuple[Path, list[str]],
    tmp_path: Path,
    dex,
) -> None:
    # The only input that needs a library: the step installs requests-oauthlib for it.
    repo, _ = service
    policy = tmp_path / "policy.csv"
    policy.write_text(
        "p, role:ci, CreateRelease, *:*, *, allow\np, role:ci, DeployRelease, *:*, *, allow\n"
        "g, machines, role:ci\n"
    )
    server = start_server(
        bare_remote,
        KUBERPULT_API_ENABLE_DESPITE_NO_AUTH="false",
        KUBERPULT_DEX_ENABLED="true",
        KUBERPULT_DEX_ISSUER_URL=dex.issuer,
        KUBERPULT_DEX_CLIENT_ID="kuberpult",
        KUBERPULT_DEX_RBAC_POLICY_PATH=str(policy),
    )
    run = action.run(
        {
            "url": server.url,
            "application": unique_app(),
            "manifests": "staging=deploy/dev.yaml",
            "skip-signatures": "true",
            "oauth-token-url": f"{dex.issuer}/token",
            "oauth-client-id": "ci-bot",
            "oauth-client-secret": "s3cret-for-the-action",
            "oauth-audience": "kuberpult",
        },
        workspace=repo,
    )
    assert run.outcome == "success", run.log
    assert bare_remote.log("%ae")[0] == "ci-bot@clients.example.com"
    assert "s3cret-for-the-action" not in run.log.replace("::add-mask::s3cret-for-the-action", "")
