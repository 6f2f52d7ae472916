"""P7: the GitHub Action's own overhead, on a cold runner: everything the step does except
waiting for the server (Python start, git metadata, gpg signing, the request's body).

The composite steps run as the runner runs them (``testkit.action_runner``), each run with a
fresh ``RUNNER_TEMP`` (runners clean it after every job), against a local server with the
signing key in its keyring. The server's own time is measured in the same process by sending
the same release directly; the overhead is the difference. The comparison is what the Action
did before it needed nothing installed: a virtualenv plus a pip install of the whole
distribution, server dependencies included, timed here with pip's cache off.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from testkit.action_runner import CompositeAction
from testkit.remote import git
from testkit.remote import make_bare_remote
from testkit.server import ROOT
from testkit.server import Server
from testkit.server import stop_gpg_agent

MANIFEST = b"kind: Deployment\nmetadata:\n  name: svc\nspec:\n  replicas: 2\n"


def _signing_key(home: Path) -> tuple[str, bytes]:
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback"]
    gpg += ["--passphrase", ""]
    subprocess.run(
        [*gpg, "--quick-gen-key", "Bench <bench@example.com>", "ed25519", "sign", "never"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    secret = subprocess.run(
        [*gpg, "--armor", "--export-secret-keys"], check=True, capture_output=True, timeout=60
    ).stdout.decode()
    public = subprocess.run([*gpg, "--export"], check=True, capture_output=True, timeout=60)
    return secret, public.stdout


def _workspace(where: Path) -> Path:
    where.mkdir()
    git("init", "-q", "--initial-branch=main", cwd=where)
    for index in range(3):
        (where / "deploy").mkdir(exist_ok=True)
        (where / "deploy" / "dev.yaml").write_bytes(MANIFEST + f"# {index}\n".encode())
        git("add", "-A", cwd=where)
        git("commit", "-q", "-m", f"change {index}", cwd=where)
    return where


def p7_action_overhead(base: Path, runs: int = 7) -> dict[str, float]:
    """Median seconds: the Action's step, the server alone, and the former install."""
    base.mkdir(parents=True)
    secret, public = _signing_key(base / "key")
    keyring = base / "keyring.gpg"
    keyring.write_bytes(public)
    remote = make_bare_remote(base / "remote.git")
    remote.push_files(base, {"environments/dev/config.json": '{"upstream":{"latest":true}}'})
    server = Server(
        base / "data",
        {
            "KUBERPULT_GIT_URL": remote.url,
            "KUBERPULT_PGP_KEY_RING_PATH": str(keyring),
            "KUBERPULT_OPEN_READS": "true",
        },
    ).start()
    workspace = _workspace(base / "workspace")
    action_times, server_times = [], []
    try:
        for run in range(runs):
            runner = CompositeAction(ROOT, base / f"runner-temp-{run}")
            app = f"bench-{uuid.uuid4().hex[:8]}"
            started = time.perf_counter()
            result = runner.run(
                {
                    "url": server.url,
                    "application": app,
                    "manifests": "dev=deploy/dev.yaml",
                    "gpg-private-key": secret,
                },
                workspace=workspace,
                env={"GITHUB_SHA": git("rev-parse", "HEAD", cwd=workspace).strip()},
            )
            action_times.append(time.perf_counter() - started)
            if result.outcome != "success":
                raise RuntimeError(result.log)
            # The same release, sent directly: what the server itself takes.
            direct_app = f"direct-{uuid.uuid4().hex[:8]}"
            signature = subprocess.run(
                [
                    "gpg",
                    "--homedir",
                    str(base / "key"),
                    "--batch",
                    "--pinentry-mode",
                    "loopback",
                    "--passphrase",
                    "",
                    "--armor",
                    "--detach-sign",
                ],
                input=MANIFEST,
                check=True,
                capture_output=True,
                timeout=60,
            ).stdout
            started = time.perf_counter()
            answer = server.release(
                direct_app,
                {"dev": MANIFEST},
                path="/release",
                fields={"version": "3"},
                signatures=[("dev", signature)],
            )
            server_times.append(time.perf_counter() - started)
            if answer.status_code != 201:
                raise RuntimeError(answer.text)
    finally:
        server.stop()
        stop_gpg_agent(base / "key")
    venv = base / "former-venv"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=600)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-cache-dir",
            "--disable-pip-version-check",
            f"{ROOT}[server]",
        ],
        check=True,
        capture_output=True,
        timeout=900,
    )
    former = time.perf_counter() - started
    step, direct = statistics.median(action_times), statistics.median(server_times)
    return {"action": step, "server": direct, "overhead": step - direct, "former": former}
