"""Every process the server starts (git and its children, gpg-agent) ends with the server.

A git push or fast-import that outlives its killed worker would go on changing the clone (and
the remote) while the next worker holds the repository lock; a gpg-agent left behind outlives
the whole server. Processes are found by what they inherit: the server's environment holds the
test's unique data directory, and so does the environment of everything it starts.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from testkit.remote import Remote
from testkit.remote import make_bare_remote
from testkit.server import Server
from testkit.server import unique_app
from testkit.server import wait_for
from tests.gpg_keys import Keys

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Process:
    """One live process: its pid and start time (together they name it despite pid reuse)."""

    pid: int
    ppid: int
    start: int
    cmdline: str


def _process(pid: int) -> Process | None:
    """The process ``pid``, or None if it is gone or a zombie (dead, only not reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    if fields[0] in ("Z", "X"):
        return None
    command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return Process(pid, int(fields[1]), int(fields[19]), command)


def processes_holding(*markers: str) -> list[Process]:
    """Every live process whose environment or command line holds one of ``markers``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            text = (
                Path(entry.path, "environ").read_bytes() + Path(entry.path, "cmdline").read_bytes()
            )
        except OSError:
            continue
        if any(marker.encode() in text for marker in markers):
            process = _process(int(entry.name))
            if process is not None:
                found.append(process)
    return found


def still_alive(processes: list[Process]) -> list[Process]:
    """Those of ``processes`` that still run (the same pid with the same start time)."""
    alive = []
    for process in processes:
        now = _process(process.pid)
        if now is not None and now.start == process.start:
            alive.append(now)
    return alive


def kill_all(processes: list[Process]) -> None:
    """Clean up after a failed test: nothing it found may keep running."""
    for process in still_alive(processes):
        try:
            os.kill(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def workers_of(server: Server) -> list[int]:
    """The pids of the gunicorn workers (the children of the master)."""
    assert server.process is not None
    master = server.process.pid
    return [
        int(entry.name)
        for entry in os.scandir("/proc")
        if entry.name.isdigit()
        and (process := _process(int(entry.name))) is not None
        and process.ppid == master
    ]


# -- git: the runner itself ------------------------------------------------------------------

_RUN_IN_A_THREAD = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from server.repo import git
    cwd, mechanism = Path(sys.argv[1]), sys.argv[2]
    if mechanism == "prctl":
        git._setpriv = lambda: None  # as on a system without util-linux's setpriv
    def run():
        # An alias runs through a shell: git's child (sh) and grandchild (sleep) both hang.
        git.Git(cwd, cwd / "home").run(["-c", "alias.hang=!sleep 60; :", "hang"], timeout=300)
    threading.Thread(target=run).start()
    """
)

MECHANISMS = ["setpriv", "prctl"]


@pytest.fixture(params=MECHANISMS)
def mechanism(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How the parent-death signal is set: by setpriv, or (without it) by prctl in the child."""
    from server.repo import git

    if request.param == "setpriv":
        # Not a skip: scripts/ensure-tools installs util-linux, so CI always tests this path.
        assert git._setpriv() is not None, "util-linux's setpriv is missing (scripts/ensure-tools)"
    if request.param == "prctl":
        monkeypatch.setattr(git, "_setpriv", lambda: None)
    return str(request.param)


def test_git_and_its_children_die_with_the_process_that_ran_it(
    tmp_path: Path, mechanism: str
) -> None:
    """SIGKILL the process running ``Git.run`` (from a thread, as gunicorn's request threads
    do): git, the shell it started and the shell's child all end within moments."""
    marker = f"KUBERPULT_TEST_MARKER={tmp_path}"
    runner = subprocess.Popen(
        [sys.executable, "-c", _RUN_IN_A_THREAD, str(tmp_path), mechanism],
        cwd=ROOT,
        env={**os.environ, "KUBERPULT_TEST_MARKER": str(tmp_path)},
    )
    started: list[Process] = []
    try:
        assert wait_for(
            lambda: any(p.cmdline.startswith("sleep 60") for p in processes_holding(marker)),
            timeout=20,
        )
        started = [p for p in processes_holding(marker) if p.pid != runner.pid]
        assert any(p.cmdline.startswith("git ") for p in started), started
        runner.kill()
        runner.wait(timeout=10)
        assert wait_for(lambda: not still_alive(started), timeout=5), still_alive(started)
    finally:
        runner.kill()
        kill_all(started)


def test_a_timeout_still_kills_the_whole_group(tmp_path: Path, mechanism: str) -> None:
    from server.repo.git import Git
    from server.repo.git import GitTimeout

    marker = f"KUBERPULT_TEST_MARKER={tmp_path}"
    began = time.monotonic()
    with pytest.raises(GitTimeout):
        Git(tmp_path, tmp_path / "home").run(
            ["-c", "alias.hang=!sleep 60; :", "hang"],
            timeout=1,
            env={"KUBERPULT_TEST_MARKER": str(tmp_path)},
        )
    assert time.monotonic() - began < 10
    assert wait_for(lambda: not processes_holding(marker), timeout=5)


def test_git_exit_codes_stdin_and_output_pass_through(tmp_path: Path, mechanism: str) -> None:
    from server.repo.git import Git

    git = Git(tmp_path, tmp_path / "home")
    git.run(["init", "-q"])
    # stdin reaches git (here: hash-object reads the blob from it), stdout comes back.
    sha = git.run(["hash-object", "--stdin"], stdin="hello\n").stdout.strip()
    assert sha == "ce013625030ba8dba906f756967f9e9ca394464a"
    stream = tmp_path / "blob"
    stream.write_bytes(b"hello\n")
    with stream.open("rb") as handle:
        assert git.run(["hash-object", "--stdin"], stdin=handle).stdout.strip() == sha
    missing = git.run(["rev-parse", "--verify", "-q", "HEAD"], check=False)
    assert missing.returncode == 1
    bad = git.run(["no-such-command"], check=False)
    assert bad.returncode == 1 and "no-such-command" in bad.stderr
    # git ls-remote --exit-code: 2 means "no such ref", which the clone's sync relies on.
    git.run(["remote", "add", "origin", str(tmp_path)])
    absent = git.run(["ls-remote", "--exit-code", "origin", "refs/heads/nope"], check=False)
    assert absent.returncode == 2


def test_git_is_not_started_when_its_parent_died_first(tmp_path: Path) -> None:
    """The supervisor starts git only under the process that asked for it: a shell whose
    parent died before the parent-death signal was set would otherwise run git unwatched."""
    from server.repo.git import _SUPERVISOR

    touched = tmp_path / "touched"
    wrong_parent = str(os.getpid() + 1)
    result = subprocess.run(
        ["/bin/sh", "-c", _SUPERVISOR, "sh", wrong_parent, "touch", str(touched)],
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 125
    assert not touched.exists()
    result = subprocess.run(
        ["/bin/sh", "-c", _SUPERVISOR, "sh", str(os.getpid()), "touch", str(touched)],
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0 and touched.exists()


# -- git: a real worker killed mid-push --------------------------------------------------------


def test_a_push_in_flight_dies_with_its_killed_worker(start_server, tmp_path: Path) -> None:
    remote: Remote = make_bare_remote(tmp_path / f"remote-{unique_app('hang')}.git")
    slow, hooked = tmp_path / "slow", tmp_path / "hook-started"
    hook = remote.path / "hooks" / "pre-receive"
    # The remote's hook runs under git-receive-pack, a child of our git push: while it sleeps,
    # the push has a child and a grandchild.
    hook.write_text(
        f"#!/bin/sh\ncat >/dev/null\nif [ -e '{slow}' ]; then touch '{hooked}'; sleep 30; fi\n"
    )
    hook.chmod(0o755)
    server: Server = start_server(remote, workers=1, KUBERPULT_GIT_PUSH_TIMEOUT="90")
    assert server.process is not None
    first = unique_app()
    assert server.release(first).status_code == 201
    slow.touch()
    app = unique_app()
    outcome: list[object] = []

    def release() -> None:
        try:
            outcome.append(server.release(app, timeout=120))
        except requests.RequestException as error:
            outcome.append(error)

    thread = threading.Thread(target=release)
    thread.start()
    in_flight: list[Process] = []
    try:
        assert wait_for(hooked.exists, timeout=30), server.log()
        (worker,) = workers_of(server)
        markers = (f"KUBERPULT_DATA_DIR={server.data_dir}", str(remote.path))
        in_flight = [
            p for p in processes_holding(*markers) if p.pid not in (server.process.pid, worker)
        ]
        commands = [p.cmdline for p in in_flight]
        assert any(" push " in c for c in commands), commands
        assert any("receive-pack" in c for c in commands), commands
        assert any(c.startswith("sleep 30") for c in commands), commands
        os.kill(worker, signal.SIGKILL)
        slow.unlink()
        assert wait_for(lambda: not still_alive(in_flight), timeout=5), still_alive(in_flight)
        thread.join(timeout=30)
        assert isinstance(outcome[0], requests.ConnectionError), outcome
        # The new worker pushes the release the dead one left pending, and takes new ones.
        assert wait_for(lambda: remote.exists(f"applications/{app}/releases/1")), server.log()
        assert remote.log().count(f'created version 1 of "{app}"') == 1
        later = unique_app()
        assert server.release(later).status_code == 201
        assert remote.exists(f"applications/{later}/releases/1")
    finally:
        slow.unlink(missing_ok=True)
        kill_all(in_flight)
        thread.join(timeout=60)


# -- gpg ---------------------------------------------------------------------------------------


@pytest.fixture
def short_path() -> Iterator[Path]:
    """A directory with a short path: gpg-agent cannot start in a home whose socket path is
    longer than a unix socket address allows (pytest's tmp_path for a long test name is)."""
    path = Path(tempfile.mkdtemp(prefix="kp-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_no_gpg_agent_outlives_the_server(short_path: Path, gpg_keys: Keys) -> None:
    remote = make_bare_remote(short_path / "remote.git")
    data = short_path / "data"
    server = Server(
        data,
        {"KUBERPULT_GIT_URL": remote.url, "KUBERPULT_PGP_KEY_RING_PATH": str(gpg_keys.keyring)},
    )
    markers = (f"KUBERPULT_DATA_DIR={data}", str(data / "gnupg"))
    left: list[Process] = []
    try:
        server.start()
        manifest = b"kind: ConfigMap\n"
        signature = gpg_keys.sign("trusted", manifest)
        response = server.release(
            unique_app(),
            {"development": manifest},
            path="/release",
            signatures=[("development", signature)],
        )
        assert response.status_code == 201, response.text
        assert server.process is not None
        left = processes_holding(*markers)
        # Stopped as an operator stops it (SIGTERM to the master), not by Server.stop, which
        # also stops any gpg-agent of the keyring home.
        server.process.terminate()
        server.process.wait(timeout=30)
        assert wait_for(lambda: not processes_holding(*markers), timeout=5)
        left = processes_holding(*markers)
        assert not left, left
    finally:
        left = processes_holding(*markers)
        server.stop()
        kill_all(left)


def test_the_keyring_check_starts_no_agent_and_still_finds_a_secret_key(
    short_path: Path, gpg_keys: Keys
) -> None:
    """Secret keys are looked for on disk: asking gpg would start an agent."""
    from server.auth.signatures import KeyringError
    from server.auth.signatures import SignatureVerifier

    homes = short_path / "gnupg"
    try:
        verifier = SignatureVerifier(gpg_keys.keyring, homes)
        assert gpg_keys.fingerprints["trusted"] in verifier.fingerprints
        assert not processes_holding(str(homes))
        planted = verifier.home / "private-keys-v1.d" / "0123.key"
        planted.parent.mkdir(exist_ok=True)
        planted.write_text("(private-key ...)")
        with pytest.raises(KeyringError, match="holds a secret key"):
            SignatureVerifier(gpg_keys.keyring, homes)
    finally:
        kill_all(processes_holding(str(homes)))
