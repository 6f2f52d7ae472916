"""Attacks 5, 7, 12 and 13: what the server refuses at start-up, and what it never shows
(a token in the remote URL)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import requests

from server.cli import bind_host
from server.cli import is_loopback
from testkit.server import ROOT
from testkit.server import SERVER_BIN
from testkit.server import free_port
from tests.gpg_keys import Keys

SECRET = "ghp_s3cr3tTOKENvalue"


def run_server(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``kuberpult-server`` to completion (it refuses before serving)."""
    return subprocess.run(
        [str(SERVER_BIN), *args],
        env={"PATH": os.environ["PATH"], "KUBERPULT_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("bind", "loopback"),
    [
        ("127.0.0.1:8081", True),
        ("127.9.9.9:8081", True),
        ("localhost:8081", True),
        ("[::1]:8081", True),
        ("0.0.0.0:8081", False),
        ("[::]:8081", False),
        (":8081", False),
        ("localhost.evil.example:8081", False),
        ("127.0.0.1.nip.io:8081", False),
        ("10.0.0.5:8081", False),
        ("0:0:0:0:0:0:0:1:8081", False),  # gunicorn reads host "0" (all interfaces)
        ("fd://3", False),  # an inherited socket may listen anywhere
    ],
)
def test_loopback_is_decided_on_the_parsed_host(bind: str, loopback: bool) -> None:
    host = bind_host(bind)
    assert host is not None
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    "bind",
    ["0.0.0.0:{port}", "localhost.evil.example:{port}", "[::]:{port}", "0:0:0:0:0:0:0:1:{port}"],
)
def test_the_opt_out_never_opens_a_public_address(tmp_path: Path, bind: str) -> None:
    result = run_server(
        tmp_path,
        "--bind",
        bind.format(port=free_port()),
        KUBERPULT_API_ENABLE_DESPITE_NO_AUTH="true",
    )
    assert result.returncode == 2, result.stderr
    assert "refusing to listen" in result.stderr
    assert not (tmp_path / "data").exists()


def test_scripts_run_makes_no_claim_its_arguments_contradict(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "run"), "--bind", f"0.0.0.0:{free_port()}"],
        env={**os.environ, "KUBERPULT_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2
    assert "refusing to listen on '0.0.0.0'" in result.stderr
    assert "127.0.0.1 only" not in result.stderr


def test_a_misspelt_setting_stops_the_server_with_a_suggestion(tmp_path: Path) -> None:
    result = run_server(tmp_path, KUBERPULT_PGP_KEYRING_PATH="/etc/keyring.asc")
    assert result.returncode == 2
    assert "unknown setting KUBERPULT_PGP_KEYRING_PATH" in result.stderr
    assert "did you mean KUBERPULT_PGP_KEY_RING_PATH?" in result.stderr


def test_the_opt_out_beside_a_keyring_is_refused(tmp_path: Path, gpg_keys: Keys) -> None:
    result = run_server(
        tmp_path,
        KUBERPULT_PGP_KEY_RING_PATH=str(gpg_keys.keyring),
        KUBERPULT_API_ENABLE_DESPITE_NO_AUTH="true",
    )
    assert result.returncode == 2
    assert "KUBERPULT_OPEN_READS" in result.stderr


def test_a_keyring_with_a_secret_key_is_refused(tmp_path: Path, gpg_keys: Keys) -> None:
    secret = tmp_path / "secret.asc"
    secret.write_bytes(
        gpg_keys.gpg("--armor", "--export-secret-keys", gpg_keys.fingerprints["trusted"])
    )
    result = run_server(tmp_path, KUBERPULT_PGP_KEY_RING_PATH=str(secret))
    assert result.returncode == 2
    assert "secret key material" in result.stderr
    homes = tmp_path / "data" / "gnupg"
    assert not any(homes.glob("*/private-keys-v1.d/*.key")), "the secret key was imported"


def test_a_binary_keyring_with_a_secret_key_is_refused(tmp_path: Path, gpg_keys: Keys) -> None:
    secret = tmp_path / "secret.gpg"
    secret.write_bytes(gpg_keys.gpg("--export-secret-keys", gpg_keys.fingerprints["trusted"]))
    result = run_server(tmp_path, KUBERPULT_PGP_KEY_RING_PATH=str(secret))
    assert result.returncode == 2
    assert "secret key material" in result.stderr


def test_the_git_url_token_is_shown_nowhere(tmp_path: Path, start_server) -> None:
    # The remote is unreachable (a closed port): the server still starts, and every place
    # that names the remote (start-up line, overview page, /readyz, create-environment)
    # must blank the credentials.
    url = f"https://ci-bot:{SECRET}@127.0.0.1:{free_port()}/acme/manifests.git"
    server = start_server(KUBERPULT_GIT_URL=url, KUBERPULT_GIT_PUSH_TIMEOUT="2")
    page = requests.get(server.url + "/", timeout=10)
    assert page.status_code == 200
    assert "https://***@127.0.0.1" in page.text
    release = server.release("app", timeout=30)
    assert release.status_code in (502, 503)
    readyz = requests.get(server.url + "/readyz", timeout=10)
    created = subprocess.run(
        [str(SERVER_BIN), "create-environment", "production"],
        env={
            **os.environ,
            "KUBERPULT_DATA_DIR": str(server.data_dir),
            "KUBERPULT_GIT_URL": url,
            "KUBERPULT_GIT_PUSH_TIMEOUT": "2",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "kuberpult-server: authentication:" in server.log()
    for shown in (
        page.text,
        release.text,
        readyz.text,
        server.log(),
        created.stdout + created.stderr,
    ):
        assert SECRET not in shown
