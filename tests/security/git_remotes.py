"""Real authenticated git remotes on 127.0.0.1: OpenSSH's sshd, and git's smart HTTP over TLS.

Both serve a bare repository and accept exactly one credential, so a test can show that the
server pushes with the right one and is refused (and pushes nothing) with a wrong one.
"""

from __future__ import annotations

import base64
import datetime
import hmac
import ipaddress
import os
import pwd
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from testkit.remote import Remote
from testkit.remote import make_bare_remote
from testkit.server import free_port

SSHD = Path("/usr/sbin/sshd")


def ssh_keygen(path: Path) -> str:
    """A new passphrase-less ed25519 key at ``path``; returns the public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kuberpult-test", "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return path.with_name(path.name + ".pub").read_text().strip()


class SshRemote(Remote):
    """A bare repository served by a private sshd; ``known_hosts`` pins its real host key,
    ``forged_known_hosts`` another key for the same address (what a man in the middle shows)."""

    def __init__(self, path: Path, base: Path, port: int, user: str) -> None:
        super().__init__(path)
        self.port = port
        self.user = user
        self.client_key = base / "client_key"
        self.known_hosts = base / "known_hosts"
        self.forged_known_hosts = base / "forged_known_hosts"
        self.log_path = base / "sshd.log"

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{self.path}"


@contextmanager
def running_sshd(base: Path) -> Iterator[SshRemote]:
    """sshd in the foreground on a free port, serving a new bare repository to one key."""
    if not SSHD.is_file():
        pytest.fail(f"{SSHD} is missing: run scripts/ensure-tools --with-sshd")
    base.mkdir(parents=True)
    user = pwd.getpwuid(os.getuid()).pw_name
    remote = SshRemote(make_bare_remote(base / "manifests.git").path, base, free_port(), user)
    host_key = ssh_keygen(base / "host_key")
    forged_key = ssh_keygen(base / "forged_host_key")
    # `restrict`: the key may run git's commands, but gets no pty and no forwarding.
    (base / "authorized_keys").write_text(f"restrict {ssh_keygen(remote.client_key)}\n")
    address = f"[127.0.0.1]:{remote.port}"
    remote.known_hosts.write_text(f"{address} {host_key}\n")
    remote.forged_known_hosts.write_text(f"{address} {forged_key}\n")
    config = base / "sshd_config"
    config.write_text(
        f"Port {remote.port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {base / 'host_key'}\n"
        "PidFile none\n"
        f"AuthorizedKeysFile {base / 'authorized_keys'}\n"
        f"AllowUsers {user}\n"
        # The tests run as root; a key (never a password) may log in as root.
        "PermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "LogLevel VERBOSE\n"
    )
    if os.getuid() == 0:
        # sshd's privilege-separation directory; systemd's unit usually creates it.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    with remote.log_path.open("ab") as log:
        # sshd must be started by its absolute path (it re-executes itself per connection).
        process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        _wait_for_port(remote.port, process, remote.log_path)
        yield remote
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"sshd exited early:\n{log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"sshd did not listen on {port}:\n{log.read_text(errors='replace')}")


class HttpsRemote(Remote):
    """A bare repository behind ``git http-backend`` over TLS, demanding basic auth with
    ``username`` and ``token``. ``ca_file`` is the server's self-signed certificate."""

    def __init__(self, path: Path, port: int, ca_file: Path, username: str, token: str) -> None:
        super().__init__(path)
        self.port = port
        self.ca_file = ca_file
        self.username = username
        self.token = token
        self.refused = 0  # requests answered 401 (no or wrong credentials)
        self.served = 0  # requests passed to git http-backend

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/{self.path.name}"


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files (certificate, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def serving_git_https(base: Path, username: str, token: str) -> Iterator[HttpsRemote]:
    """git's smart HTTP protocol over TLS on a free port, for one bare repository."""
    base.mkdir(parents=True)
    bare = make_bare_remote(base / "manifests.git").path
    cert, key = self_signed_certificate(base)
    expected = "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()
    remote: HttpsRemote

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            body = self._body()  # read first, so a refused request ends cleanly
            if not hmac.compare_digest(self.headers.get("Authorization", ""), expected):
                remote.refused += 1
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="manifests"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            remote.served += 1
            path, _, query = self.path.partition("?")
            env = {
                "PATH": os.environ["PATH"],
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_PROJECT_ROOT": str(base),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REMOTE_USER": username,  # lets http-backend accept pushes (receive-pack)
                "REMOTE_ADDR": "127.0.0.1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": unquote(path),
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            }
            cgi = subprocess.run(
                ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60
            )
            # A CGI answer: "Status: ..." and other headers, a blank line, the body.
            head, _, payload = cgi.stdout.partition(b"\r\n\r\n")
            headers = [line.split(":", 1) for line in head.decode().splitlines() if ":" in line]
            status = next((int(v.split()[0]) for k, v in headers if k.lower() == "status"), 200)
            self.send_response(status)
            for name, value in headers:
                if name.lower() != "status":
                    self.send_header(name, value.strip())
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)

        do_GET = do_POST = _serve  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass  # quiet: pytest shows stderr of failed tests

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    remote = HttpsRemote(bare, server.server_port, cert, username, token)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield remote
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
