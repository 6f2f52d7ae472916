"""A throwaway PostgreSQL server from Debian's ``postgresql`` package, as root: ``initdb`` as
the ``postgres`` user into a fresh directory in /tmp, TCP on 127.0.0.1 only, a password."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg


def postgres_bin() -> Path:
    """The newest installed server's binaries (``/usr/lib/postgresql/<major>/bin``)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        raise AssertionError("PostgreSQL is not installed: scripts/ensure-tools --with-postgres")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One server with a superuser ``kl``; ``database()`` hands out a fresh database."""

    user = "kl"

    def __init__(self) -> None:
        self.bin = postgres_bin()
        # Not below pytest's tmp_path: /tmp/pytest-of-root is 0700, and the server runs as
        # the postgres user.
        self.root = Path(tempfile.mkdtemp(prefix="kuberpult-pg-"))
        shutil.chown(self.root, "postgres", "postgres")
        self.data = self.root / "data"
        self.password = secrets.token_hex(16)
        self.port = _free_port()
        password_file = self.root / "pw"
        password_file.write_text(self.password + "\n")
        shutil.chown(password_file, "postgres")
        password_file.chmod(0o600)
        self._as_postgres(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            self.user,
            f"--pwfile={password_file}",
            "--auth=scram-sha-256",
            "--no-locale",
            "--encoding=UTF8",
            "--no-sync",
            "--no-instructions",
        )
        password_file.unlink()

    def _as_postgres(self, program: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin / program), *args],
            user="postgres",
            group="postgres",
            extra_groups=[],
            cwd=self.root,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> PostgresServer:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= "
            "-c fsync=off -c full_page_writes=off -c max_connections=300"
        )
        self._as_postgres(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
            "-t", "60", "-o", options, "start",
        )  # fmt: skip
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """Create an empty database; return its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
        return self.url(name)

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once (a crash, not a shutdown)."""
        os.killpg(os.getpgid(self.postmaster_pid()), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    time.sleep(0.05)
            except OSError:
                break
        # The dead postmaster may linger as a zombie of PID 1 that still "owns" the pid file.
        (self.data / "postmaster.pid").unlink(missing_ok=True)

    def stop(self) -> None:
        try:
            self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass  # already down
        shutil.rmtree(self.root, ignore_errors=True)
