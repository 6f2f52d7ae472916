"""A real ``kuberpult-server`` (gunicorn) process on 127.0.0.1, and the small helpers that
requests to it need."""

from __future__ import annotations

import base64
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
SERVER_BIN = Path(sys.executable).parent / "kuberpult-server"


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
        self.use_port(free_port())
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def use_port(self, port: int) -> None:
        """Listen on ``port`` at the next start."""
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def start(self, timeout: float = 30) -> Server:
        """Start it and wait until /healthz answers 200 from this process.

        The port was free when it was chosen, not necessarily when gunicorn binds it: another
        test's server may take it in between, and then /healthz answers from that server.
        Healthy therefore means gunicorn said it listens; a port in use is retried on another.
        """
        for _ in range(5):
            if self._start_once(timeout):
                return self
            self.use_port(free_port())
        raise AssertionError(f"no free port after five tries:\n{self.log()}")

    def _start_once(self, timeout: float) -> bool:
        """Start on self.port; False when the port was taken before gunicorn could bind it."""
        env = {
            **os.environ,
            "KUBERPULT_DATA_DIR": str(self.data_dir),
            "KUBERPULT_RECOVERY_INTERVAL": "1",
            **self.env,
        }
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
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
            printed = self._log_since(offset)
            if "Connection in use" in printed:
                self.process.kill()
                self.process.wait()
                return False
            if f"Listening at: {self.url}" in printed:
                try:
                    if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                        return True
                except requests.RequestException:
                    pass  # the worker is still starting
            time.sleep(0.05)
        raise AssertionError(f"server did not become healthy:\n{self.log()}")

    def _log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

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

    def worker_pids(self) -> list[int]:
        """The gunicorn workers (the master's children)."""
        assert self.process is not None
        return children(self.process.pid)

    def kill(self) -> None:
        """SIGKILL the master and every worker at once, as a lost machine would stop them."""
        assert self.process is not None
        for pid in [self.process.pid, *self.worker_pids()]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()

    def stored_releases(self, application: str) -> int:
        """How many releases of ``application`` the server's SQLite store holds."""
        with sqlite3.connect(self.data_dir / "kuberpult.sqlite3") as db:
            query = "select count(*) from releases where application = ?"
            return int(db.execute(query, [application]).fetchone()[0])

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


def stop_gpg_agent(home: Path) -> None:
    """Stop the gpg-agent that gpg started for ``home``."""
    subprocess.run(
        ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
        capture_output=True,
        timeout=30,
        check=False,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # it just exited
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found
