"""The README's commands work as written: every shell block marked ``<!-- readme-test -->`` is
run with bash, in a git checkout, against a live server (its address put in place of the
README's 127.0.0.1:8081), and must leave the releases it makes on the remote."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from testkit.remote import GIT_ENV
from testkit.remote import Remote
from testkit.remote import git
from testkit.server import ROOT
from testkit.server import Server

MARKED = re.compile(r"<!-- readme-test -->\n```sh\n(.*?)```", re.DOTALL)


def marked_blocks() -> list[str]:
    return MARKED.findall((ROOT / "README.md").read_text())


def test_the_readme_marks_its_release_examples() -> None:
    blocks = marked_blocks()
    assert len(blocks) >= 2
    assert any("curl" in block for block in blocks)
    assert any("kuberpult-client" in block for block in blocks)


@pytest.mark.parametrize("block", marked_blocks(), ids=lambda b: b.split()[0])
def test_a_readme_block_runs_as_written(
    block: str, start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    bare_remote.push_files(
        tmp_path,
        {
            "environments/development/config.json": '{"upstream":{"latest":true}}',
            "environments/staging/config.json": '{"upstream":{"environment":"development"}}',
        },
    )
    server: Server = start_server(bare_remote)
    checkout = tmp_path / "service"
    git("init", "-q", str(checkout), cwd=tmp_path)
    (checkout / "main.go").write_text("package main\n")
    git("add", "main.go", cwd=checkout)
    git("commit", "-q", "-m", "fix: the bug; and a semicolon", cwd=checkout)
    for name in ("dev.yaml", "staging.yaml"):
        (checkout / name).write_text("apiVersion: apps/v1\nkind: Deployment\n")
    script = block.replace("127.0.0.1:8081", f"127.0.0.1:{server.port}")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=checkout,
        env={
            **os.environ,
            **GIT_ENV,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "NAME": "Jane Doe",
            "EMAIL": "jane@example.com",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert bare_remote.exists("applications/my-service/releases"), result.stdout + result.stderr
    listed = requests.get(f"{server.url}/api/applications/my-service/releases", timeout=10)
    releases = listed.json()["releases"]
    assert releases and all(r["state"] == "pushed" for r in releases)
    # Free text arrives whole (curl's -F would cut it at the ';').
    assert {r["source_message"] for r in releases} == {"fix: the bug; and a semicolon"}


INSTALL = re.compile(r"<!-- readme-test: install -->\n```sh\n(.*?)```", re.DOTALL)


def test_the_readmes_install_commands_give_a_working_server_command(tmp_path: Path) -> None:
    (block,) = INSTALL.findall((ROOT / "README.md").read_text())
    script = block.replace("/opt/kuberpult-lite", str(tmp_path / "opt")).replace(
        "./kuberpult-lite", str(ROOT)
    )
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "create-environment" in result.stdout  # kuberpult-server --help
    assert (tmp_path / "opt" / ".venv" / "bin" / "kuberpult-client").exists()


SIGNING_KEY = re.compile(r"<!-- readme-test: signing-key -->\n```sh\n(.*?)```", re.DOTALL)


def test_the_readmes_signing_key_commands_give_a_secret_and_a_keyring(tmp_path: Path) -> None:
    (block,) = SIGNING_KEY.findall((ROOT / "README.md").read_text())
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=tmp_path,
        env={**os.environ, "GNUPGHOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("-----BEGIN PGP PRIVATE KEY BLOCK-----")
    listed = subprocess.run(
        ["gpg", "--show-keys", "--with-colons", str(tmp_path / "keyring.gpg")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "release@acme.example" in listed and "\nsec" not in listed  # public half only
    # And the server takes that keyring as it is (binary, as `gpg --export` writes it).
    from server.auth.signatures import SignatureVerifier

    verifier = SignatureVerifier(tmp_path / "keyring.gpg", tmp_path / "server-gnupg")
    assert len(verifier.fingerprints) == 1
