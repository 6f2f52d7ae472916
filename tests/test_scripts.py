"""End to end: scripts/release.sh and scripts/sign-manifests.sh against a real server."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from testkit.remote import Remote
from testkit.remote import git
from testkit.server import ROOT
from testkit.server import unique_app
from tests.gpg_keys import Keys


def script(
    name: str, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def service(tmp_path: Path) -> Path:
    """A service's git checkout with two commits and a manifest."""
    repo = tmp_path / "service"
    repo.mkdir()
    git("init", "-q", cwd=repo)
    git("config", "user.name", "Sam Dev", cwd=repo)
    git("config", "user.email", "sam@example.com", cwd=repo)
    (repo / "README").write_text("one\n")
    git("add", "README", cwd=repo)
    git("commit", "-q", "-m", "first", cwd=repo)
    (repo / "dev.yaml").write_text("kind: Deployment\n")
    git("add", "dev.yaml", cwd=repo)
    git("commit", "-q", "-m", "Ship it; with $(quotes) & 'more'\n\nbody line", cwd=repo)
    return repo


@pytest.mark.parametrize("name", ["release.sh", "sign-manifests.sh"])
def test_help(name: str, tmp_path: Path) -> None:
    result = script(name, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "usage:" in result.stdout


def test_release_sh_sends_the_checkouts_metadata(
    start_server, bare_remote: Remote, service: Path
) -> None:
    server = start_server(bare_remote)
    app = unique_app()
    result = script(
        "release.sh",
        "--url",
        server.url,
        "--application",
        app,
        "--team",
        "core",
        "--display-version",
        "v2",
        "development=dev.yaml",
        cwd=service,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "HTTP 201" in result.stdout
    base = f"applications/{app}/releases/2"  # two first-parent commits
    head = git("rev-parse", "HEAD", cwd=service).strip()
    assert bare_remote.read(f"{base}/source_commit_id") == head.encode()
    # The commits' author (the test identity); the git config user is the release's author.
    assert bare_remote.read(f"{base}/source_author") == b"Test Person <test@example.com>"
    assert bare_remote.read(f"{base}/source_message") == (
        b"Ship it; with $(quotes) & 'more'\n\nbody line"
    )
    assert bare_remote.read(f"{base}/display_version") == b"v2"
    assert bare_remote.log("%an <%ae>")[0] == "Sam Dev <sam@example.com>"
    conflict = script(
        "release.sh",
        "--url",
        server.url,
        "--application",
        app,
        "--team",
        "other",
        "development=dev.yaml",
        cwd=service,
    )
    assert conflict.returncode == 22
    assert "HTTP 409" in conflict.stdout


def test_signed_release_with_both_scripts(
    start_server, bare_remote: Remote, service: Path, gpg_keys: Keys
) -> None:
    server = start_server(bare_remote, KUBERPULT_PGP_KEY_RING_PATH=str(gpg_keys.keyring))
    signer = {"GNUPGHOME": str(gpg_keys.home), "KUBERPULT_GPG_PASSPHRASE": ""}
    signed = script(
        "sign-manifests.sh",
        "--key",
        gpg_keys.fingerprints["trusted"],
        "dev.yaml",
        cwd=service,
        env=signer,
    )
    assert signed.returncode == 0, signed.stderr
    assert (service / "dev.yaml.asc").read_text().startswith("-----BEGIN PGP SIGNATURE-----")
    app = unique_app()
    result = script(
        "release.sh",
        "--url",
        server.url,
        "--application",
        app,
        "--legacy",
        "--signatures",
        "development=dev.yaml",
        cwd=service,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert bare_remote.exists(f"applications/{app}/releases/2")
    unsigned = script(
        "release.sh",
        "--url",
        server.url,
        "--application",
        unique_app(),
        "--legacy",
        "development=dev.yaml",
        cwd=service,
    )
    assert unsigned.returncode == 22
    assert "signature is invalid or it was not found" in unsigned.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--application", "a", "d=dev.yaml"], "--url is required"),
        (["--url", "http://x", "d=dev.yaml"], "--application is required"),
        (["--url", "http://x", "--application", "a", "d=missing.yaml"], "does not exist"),
        (
            ["--url", "http://x", "--application", "a", "--signatures", "d=dev.yaml"],
            "dev.yaml.asc' is missing",
        ),
        (["--url", "http://x", "--application", "a", "--bogus"], "unknown option --bogus"),
    ],
)
def test_release_sh_usage_errors(service: Path, args: list[str], message: str) -> None:
    result = script("release.sh", *args, cwd=service)
    assert result.returncode == 2
    assert message in result.stderr


def test_envelope_signatures_with_both_scripts(
    start_server, bare_remote: Remote, service: Path, gpg_keys: Keys
) -> None:
    server = start_server(
        bare_remote,
        KUBERPULT_PGP_KEY_RING_PATH=str(gpg_keys.keyring),
        KUBERPULT_SIGNATURE_MODE="envelope",
    )
    app = unique_app()
    signed = script(
        "sign-manifests.sh",
        "--key",
        gpg_keys.fingerprints["trusted"],
        "--envelope",
        app,
        "02",  # the checkout's commit count, as release.sh sends it (leading zero dropped)
        "development=dev.yaml",
        cwd=service,
        env={"GNUPGHOME": str(gpg_keys.home), "KUBERPULT_GPG_PASSPHRASE": ""},
    )
    assert signed.returncode == 0, signed.stderr
    assert not (service / "dev.yaml.envelope").exists()

    def release(application: str) -> subprocess.CompletedProcess[str]:
        return script(
            "release.sh",
            "--url",
            server.url,
            "--application",
            application,
            "--legacy",
            "--signatures",
            "development=dev.yaml",
            cwd=service,
        )

    released = release(app)
    assert released.returncode == 0, released.stderr + released.stdout
    assert bare_remote.exists(f"applications/{app}/releases/2")
    replayed = release(unique_app())  # the same signature for another application
    assert replayed.returncode == 22
    assert "envelope signatures only" in replayed.stdout + replayed.stderr
