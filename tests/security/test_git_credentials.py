"""Git credentials that never sit in the remote URL: a pinned SSH deploy key, an https token
read from a file by a credential helper. Tried against real sshd and git smart-HTTP remotes."""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from server.repo.credentials import GitCredentials
from server.repo.git import Git
from server.repo.git import GitError
from server.repo.git import summarize
from testkit.server import Server
from testkit.server import unique_app
from testkit.server import wait_for
from tests.security.git_remotes import HttpsRemote
from tests.security.git_remotes import SshRemote
from tests.security.git_remotes import running_sshd
from tests.security.git_remotes import serving_git_https

StartServer = Callable[..., Server]
USERNAME = "x-access-token"


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshRemote]:
    """A bare repository served over SSH to one key, with its host key pinned."""
    with running_sshd(tmp_path / "sshd") as remote:
        yield remote


@pytest.fixture
def https_remote(tmp_path: Path) -> Iterator[HttpsRemote]:
    """A bare repository over https that takes one token (a fresh one per test)."""
    token = "ghs_" + secrets.token_hex(20)
    with serving_git_https(tmp_path / "https", USERNAME, token) as remote:
        yield remote


# -- SSH: a deploy key and a pinned host key -------------------------------------------------


def test_ssh_deploy_key_pushes_to_the_pinned_host(
    start_server: StartServer, sshd: SshRemote
) -> None:
    server = start_server(
        sshd,
        KUBERPULT_GIT_SSH_KEY_PATH=str(sshd.client_key),
        KUBERPULT_GIT_SSH_KNOWN_HOSTS_PATH=str(sshd.known_hosts),
    )
    app = unique_app()
    response = server.release(app)
    assert response.status_code == 201, response.text + server.log()
    assert sshd.exists(f"applications/{app}/releases/1")
    assert f'created version 1 of "{app}"' in sshd.log()
    # It really went through sshd, with the configured key.
    assert "Accepted publickey" in sshd.log_path.read_text()


def test_ssh_host_key_mismatch_pushes_nothing(start_server: StartServer, sshd: SshRemote) -> None:
    # Someone answers on the remote's address with another host key: never talk to it.
    server = start_server(
        sshd,
        KUBERPULT_GIT_SSH_KEY_PATH=str(sshd.client_key),
        KUBERPULT_GIT_SSH_KNOWN_HOSTS_PATH=str(sshd.forged_known_hosts),
        KUBERPULT_GIT_PUSH_TIMEOUT="10",
    )
    response = server.release(unique_app())
    assert response.status_code in (502, 503), response.text
    assert sshd.head() is None
    assert "host key verification failed" in server.log().lower()
    assert "Accepted publickey" not in sshd.log_path.read_text()


# -- https: a token file and a credential helper ---------------------------------------------


def _https_server(
    start_server: StartServer, remote: HttpsRemote, token_file: Path, **env: str
) -> Server:
    # The remote's certificate is self-signed: git trusts it through GIT_SSL_CAINFO, which the
    # server's git inherits (as it would a company CA bundle).
    return start_server(
        remote,
        KUBERPULT_GIT_TOKEN_FILE=str(token_file),
        GIT_SSL_CAINFO=str(remote.ca_file),
        **env,
    )


def _everything_the_server_wrote(server: Server) -> bytes:
    """Every file in the server's data directory (clone, git home, SQLite) and its log."""
    files = [p for p in server.data_dir.rglob("*") if p.is_file() and not p.is_symlink()]
    return b"".join(p.read_bytes() for p in files) + server.log_path.read_bytes()


def test_https_token_file_pushes_and_the_token_is_never_shown(
    start_server: StartServer, https_remote: HttpsRemote, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(https_remote.token + "\n")
    server = _https_server(start_server, https_remote, token_file)
    app = unique_app()
    response = server.release(app)
    assert response.status_code == 201, response.text + server.log()
    assert https_remote.exists(f"applications/{app}/releases/1")
    assert https_remote.served > 0
    ready = requests.get(server.url + "/readyz", timeout=10)
    receipt = requests.get(f"{server.url}/api/applications/{app}/releases/1", timeout=10)
    for text in (response.text, ready.text, receipt.text, server.log()):
        assert https_remote.token not in text
    # Not on disk either: no credential store, not in the clone's config, not in SQLite.
    assert https_remote.token.encode() not in _everything_the_server_wrote(server)
    assert https_remote.url in (server.data_dir / "manifests-clone/.git/config").read_text()


def test_https_wrong_token_pushes_nothing_until_the_file_is_rotated(
    start_server: StartServer, https_remote: HttpsRemote, tmp_path: Path
) -> None:
    wrong = "ghs_" + secrets.token_hex(20)
    token_file = tmp_path / "token"
    token_file.write_text(wrong + "\n")
    server = _https_server(start_server, https_remote, token_file, KUBERPULT_GIT_PUSH_TIMEOUT="10")
    app = unique_app()
    response = server.release(app)
    assert response.status_code in (502, 503), response.text
    assert https_remote.head() is None
    assert https_remote.refused > 0 and https_remote.served == 0
    assert "Authentication failed" in server.log()
    ready = requests.get(server.url + "/readyz", timeout=10)
    for text in (response.text, ready.text, server.log()):
        assert wrong not in text
        assert https_remote.token not in text

    # The file is read on every call: a rotated token is used without a restart, and the
    # background recovery pushes the pending release with it.
    token_file.write_text(https_remote.token + "\n")
    assert wait_for(lambda: https_remote.exists(f"applications/{app}/releases/1")), server.log()
    assert https_remote.token not in server.log()


# -- what the Git runner hands to its children -------------------------------------------------


def _credentials(tmp_path: Path, url: str = "https://git.example.com:8443/m.git") -> GitCredentials:
    token_file = tmp_path / "secret dir" / "token"
    token_file.parent.mkdir(exist_ok=True)
    token_file.write_text("ghs_" + secrets.token_hex(20) + "\n")
    return GitCredentials(url=url, token_file=token_file, username="bot")


def test_the_token_is_in_no_argument_and_no_environment_variable(tmp_path: Path) -> None:
    credentials = _credentials(tmp_path)
    git = Git(tmp_path, tmp_path / "home", credentials)
    token = credentials.token()
    assert token.startswith("ghs_")
    assert not any(token in argument for argument in git.config_args)
    assert not any(token in value for value in git.env.values())
    helpers = [a for a in git.config_args if ".helper=" in a]
    assert helpers == [
        "credential.helper=",
        "credential.https://git.example.com:8443.helper=!f() { "
        'test "$1" = get || exit 0; '
        f"t=$(tr -d ' \\t\\r\\n' < {shlex.quote(str(credentials.token_file))}) && "
        'test -n "$t" && printf \'username=%s\\npassword=%s\\n\' bot "$t"; }; f',
    ]
    assert git.env["GIT_ASKPASS"] == "/bin/false"
    assert git.env["GIT_TERMINAL_PROMPT"] == "0"


def test_git_gets_the_current_token_only_for_the_remotes_origin(tmp_path: Path) -> None:
    credentials = _credentials(tmp_path)
    assert credentials.token_file is not None
    git = Git(tmp_path, tmp_path / "home", credentials)
    ask = "protocol=https\nhost=git.example.com:8443\npath=m.git\n\n"
    filled = git.run(["credential", "fill"], stdin=ask).stdout
    assert filled.splitlines()[-2:] == ["username=bot", f"password={credentials.token()}"]
    credentials.token_file.write_text("  rotated-token\r\n")
    filled = git.run(["credential", "fill"], stdin=ask).stdout
    assert "password=rotated-token" in filled.splitlines()
    # A redirect to another host (or port) is not given the token; nothing prompts.
    for host in ("evil.example.com", "git.example.com:9443"):
        with pytest.raises(GitError) as raised:
            git.run(["credential", "fill"], stdin=f"protocol=https\nhost={host}\n\n", timeout=10)
        assert "rotated-token" not in str(raised.value)


def test_a_token_echoed_by_git_is_blanked_in_errors(tmp_path: Path) -> None:
    credentials = _credentials(tmp_path)
    git = Git(tmp_path, tmp_path / "home", credentials)
    git.run(["init", "-q"])
    token = credentials.token()
    with pytest.raises(GitError) as raised:
        git.run(["rev-parse", token])  # git repeats it
    assert token not in str(raised.value)
    result = git.run(["rev-parse", token], check=False)
    assert token not in result.stderr + result.stdout


def test_ssh_settings_become_a_pinned_batch_ssh_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_SSH_COMMAND", "ssh -i /operator/key")
    assert Git(tmp_path, tmp_path / "home").env["GIT_SSH_COMMAND"] == "ssh -i /operator/key"
    key, known = tmp_path / "deploy key", tmp_path / "known hosts"
    git = Git(tmp_path, tmp_path / "home", GitCredentials(ssh_key=key, known_hosts=known))
    assert shlex.split(git.env["GIT_SSH_COMMAND"]) == [
        "ssh",
        "-i",
        str(key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-F",
        "/dev/null",
    ]
    assert git.config_args == [
        "-c",
        "core.hooksPath=/dev/null",
        "-c",
        "gc.auto=0",
        "-c",
        "maintenance.auto=false",
        "-c",
        "commit.gpgSign=false",
    ]


def test_error_summaries_keep_the_cause_and_blank_url_credentials() -> None:
    stderr = (
        "Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.\n"
        "Host key verification failed.\n"
        "fatal: Could not read from remote repository.\n\n"
        "Please make sure you have the correct access rights\n"
        "and the repository exists.\n"
    )
    assert "Host key verification failed." in summarize(stderr)
    message = summarize("fatal: unable to access 'https://bot:s3cret@git.example.com/m.git/'")
    assert "s3cret" not in message and "https://***@git.example.com" in message
