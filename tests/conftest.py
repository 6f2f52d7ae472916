"""Fixtures: real bare git remotes, real gunicorn servers on 127.0.0.1, real HTTP."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import git as gitpython
import pytest
import requests

from tests.gpg_keys import Keys
from tests.gpg_keys import make_keys

if TYPE_CHECKING:
    from tests.oidc_provider import Provider

ROOT = Path(__file__).resolve().parent.parent
SERVER_BIN = Path(sys.executable).parent / "kuberpult-server"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Person",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test Person",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(*args: str, cwd: Path, check: bool = True) -> str:
    """Run git in ``cwd`` with a fixed test identity; return stdout."""
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout


class Remote:
    """A bare repository standing in for the hosted manifest repository."""

    def __init__(self, path: Path, branch: str = "main") -> None:
        self.path = path
        self.branch = branch

    @property
    def url(self) -> str:
        """What KUBERPULT_GIT_URL is set to."""
        return str(self.path)

    def head(self) -> str | None:
        """The branch's commit, or None if it does not exist."""
        out = git(
            "rev-parse", "--verify", "-q", f"refs/heads/{self.branch}", cwd=self.path, check=False
        )
        return out.strip() or None

    def read(self, path: str) -> bytes:
        """A file's bytes at the branch head."""
        result = subprocess.run(
            ["git", "show", f"{self.branch}:{path}"],
            cwd=self.path,
            capture_output=True,
            check=True,
            timeout=30,
        )
        return result.stdout

    def exists(self, path: str) -> bool:
        """Whether ``path`` is in the branch head's tree."""
        out = git("ls-tree", "--name-only", self.branch, "--", path, cwd=self.path, check=False)
        return bool(out.strip())

    def files(self) -> list[str]:
        """Every file path at the branch head (read with GitPython: an independent reader of
        what the server pushed); none when the branch does not exist."""
        if self.head() is None:
            return []
        repo = gitpython.Repo(self.path)
        try:
            found = []
            for item in repo.commit(self.branch).tree.traverse():
                if not isinstance(item, tuple) and item.type == "blob":
                    found.append(str(item.path))
        finally:
            repo.close()
        return sorted(found)

    def log(self, fmt: str = "%s") -> list[str]:
        """One formatted line per commit, newest first."""
        out = git("log", f"--format={fmt}", self.branch, cwd=self.path, check=False)
        return out.splitlines()

    def push_files(
        self, tmp: Path, files: Mapping[str, str | bytes | None], message: str = "foreign change"
    ) -> str:
        """Someone else pushes a commit (as a human or another tool would); None deletes."""
        clone = tmp / f"foreign-{uuid.uuid4().hex[:8]}"
        if self.head() is None:
            git("init", "-q", f"--initial-branch={self.branch}", str(clone), cwd=tmp)
        else:
            git("clone", "-q", "--branch", self.branch, self.url, str(clone), cwd=tmp)
        for path, content in files.items():
            target = clone / path
            if content is None:
                git("rm", "-r", "-q", "--", path, cwd=clone)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content if isinstance(content, bytes) else content.encode())
            git("add", "--", path, cwd=clone)
        git("commit", "-q", "-m", message, cwd=clone)
        git("push", "-q", self.url, f"HEAD:refs/heads/{self.branch}", cwd=clone)
        return git("rev-parse", "HEAD", cwd=clone).strip()

    def push_foreign_commit(self, tmp: Path, path: str, content: str) -> str:
        """Someone else pushes one changed file."""
        return self.push_files(tmp, {path: content}, f"foreign change to {path}")

    def plant_symlink(self, tmp: Path, path: str) -> Path:
        """An attacker's push: ``path`` becomes a symlink to a new directory outside the
        repository, which is returned (it must stay empty)."""
        outside = tmp / f"outside-{uuid.uuid4().hex[:8]}"
        outside.mkdir()
        clone = tmp / f"attacker-{uuid.uuid4().hex[:8]}"
        git("init", "-q", f"--initial-branch={self.branch}", str(clone), cwd=tmp)
        (clone / path).parent.mkdir(parents=True, exist_ok=True)
        (clone / path).symlink_to(outside)
        git("add", "-A", cwd=clone)
        git("commit", "-q", "-m", "plant a symlink", cwd=clone)
        git("push", "-q", self.url, f"HEAD:refs/heads/{self.branch}", cwd=clone)
        return outside

    def mode(self, path: str) -> str:
        """The git file mode at the branch head: 100644 file, 120000 symlink, 040000 tree."""
        out = git("ls-tree", self.branch, "--", path, cwd=self.path)
        return out.split()[0] if out else ""

    def message(self, index: int = 0) -> str:
        """The message of the commit ``index`` steps below the head, as Kuberpult writes it
        (without our ``Release-Id`` trailer; ``trailers()`` has it)."""
        full = git("log", "-1", "--format=%B", f"{self.branch}~{index}", cwd=self.path)
        lines = [line for line in full.splitlines() if not line.startswith("Release-Id: ")]
        return "\n".join(lines).strip()

    def release_ids(self) -> list[str]:
        """Every Release-Id trailer on the branch, newest first (one per release commit)."""
        out = git(
            "log", "--format=%(trailers:key=Release-Id,valueonly)", self.branch, cwd=self.path
        )
        return [line.strip() for line in out.splitlines() if line.strip()]


def make_bare_remote(path: Path, branch: str = "main") -> Remote:
    """Create an empty bare repository at ``path``."""
    path.mkdir(parents=True)
    git("init", "-q", "--bare", f"--initial-branch={branch}", cwd=path)
    return Remote(path, branch)


@pytest.fixture
def bare_remote(tmp_path: Path) -> Remote:
    """An empty bare repository in tmp_path."""
    return make_bare_remote(tmp_path / "remote.git")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A real ``kuberpult-server`` (gunicorn) process on 127.0.0.1."""

    def __init__(self, data_dir: Path, env: dict[str, str], workers: int = 2) -> None:
        self.data_dir = data_dir
        self.env = env
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> Server:
        """Start it and wait until /healthz answers 200."""
        env = {
            **os.environ,
            "KUBERPULT_DATA_DIR": str(self.data_dir),
            "KUBERPULT_RECOVERY_INTERVAL": "1",
            **self.env,
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(SERVER_BIN),
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    str(self.workers),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir.parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass  # not listening yet, or the worker is still starting
            time.sleep(0.05)
        raise AssertionError(f"server did not become healthy:\n{self.log()}")

    def stop(self) -> None:
        """Stop gunicorn and its workers (and the gpg-agent of its keyring home, if any)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        homes = self.data_dir / "gnupg"
        for home in homes.iterdir() if homes.is_dir() else []:
            if home.is_dir():
                stop_gpg_agent(home)

    def log(self) -> str:
        """What the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def release(
        self,
        application: str | None,
        manifests: Mapping[str, bytes | str] | None = None,
        *,
        path: str = "/api/release",
        fields: dict[str, str] | list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        method: str = "POST",
        timeout: float = 60,
        signatures: list[tuple[str, bytes]] | None = None,
    ) -> requests.Response:
        """Send a multipart release request the way Kuberpult's client does."""
        data: list[tuple[str, str]] = []
        if application is not None:
            data.append(("application", application))
        if isinstance(fields, dict):
            data.extend(fields.items())
        elif fields:
            data.extend(fields)
        files = [
            (
                f"manifests[{env}]",
                (f"{env}-manifest", content if isinstance(content, bytes) else content.encode()),
            )
            for env, content in (
                manifests if manifests is not None else {"development": b"kind: Deployment\n"}
            ).items()
        ]
        files += [
            (f"signatures[{env}]", (f"{env}-signature", signature))
            for env, signature in signatures or []
        ]
        # Text parts as (None, value) file tuples keep the body multipart even with no files.
        parts: list[tuple[str, tuple[str | None, bytes]]] = [
            (name, (None, value.encode())) for name, value in data
        ]
        return requests.request(
            method,
            self.url + path,
            files=[*parts, *files],
            headers=headers,
            timeout=timeout,
        )


AUTH_SETTINGS = (
    "KUBERPULT_PGP_KEY_RING_PATH",
    "KUBERPULT_DEX_ENABLED",
    "KUBERPULT_GITHUB_OIDC_POLICY_PATH",
)


def open_without_auth(env: Mapping[str, str]) -> dict[str, str]:
    """The opt-out for servers that configure no authentication (the server refuses it
    beside any credential setting)."""
    if any(env.get(name) for name in AUTH_SETTINGS):
        return {}
    return {"KUBERPULT_API_ENABLE_DESPITE_NO_AUTH": "true"}


def author_headers(name: str, email: str) -> dict[str, str]:
    """Kuberpult's base64 author headers."""
    return {
        "author-name": base64.b64encode(name.encode()).decode(),
        "author-email": base64.b64encode(email.encode()).decode(),
    }


def unique_app(prefix: str = "app") -> str:
    """An application name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers with extra environment; every one is stopped after the test."""
    started: list[Server] = []

    def start(
        remote: Remote | None = None, workers: int = 2, name: str = "data", **env: str
    ) -> Server:
        settings = {**open_without_auth(env), **env}
        if remote is not None:
            settings["KUBERPULT_GIT_URL"] = remote.url
        server = Server(tmp_path / name, settings, workers)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def stop_gpg_agent(home: Path) -> None:
    """Stop the gpg-agent that gpg started for ``home``."""
    subprocess.run(
        ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
        capture_output=True,
        timeout=30,
        check=False,
    )


@pytest.fixture(scope="session")
def gpg_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    """Real gpg keys: trusted, unknown, expired, revoked, and one signing with a subkey."""
    keys = make_keys(tmp_path_factory.mktemp("gpg"))
    yield keys
    stop_gpg_agent(keys.home)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Remote]]:
    """One server and its remote for a whole test module; tests use unique app names."""
    base = tmp_path_factory.mktemp("shared")
    remote = make_bare_remote(base / "remote.git")
    server = Server(
        base / "data",
        {"KUBERPULT_API_ENABLE_DESPITE_NO_AUTH": "true", "KUBERPULT_GIT_URL": remote.url},
    ).start()
    yield server, remote
    server.stop()


@pytest.fixture(scope="module")
def dex() -> Iterator[Provider]:
    """The Dex stand-in, a real OIDC provider: its issuer is <base>/dex."""
    from tests.oidc_provider import Provider  # it imports this module (free_port)

    provider = Provider("/dex")
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def github() -> Iterator[Provider]:
    """The GitHub Actions token service stand-in."""
    from tests.oidc_provider import Provider

    provider = Provider("")
    yield provider
    provider.stop()
