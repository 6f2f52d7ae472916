"""Benchmarks: kuberpult-lite against the naive way a CI job writes a manifest repository.

The naive way: a warm clone; write the release files; ``git add``, ``git commit``,
``git push``; on rejection ``git pull --rebase`` and push again. Both run in this process, in
one run, on the same manifests, against bare repositories on this machine; every figure is a
ratio against that baseline.

    .venv/bin/python -m benchmarks.run            # all of P1-P7
    .venv/bin/python -m benchmarks.run P2 P3      # some of them

P6 compares like with like instead: two replicas on PostgreSQL against one server on SQLite;
P7 (``benchmarks/action.py``) the Action's step against the server alone.

Over 250 lines: six benchmarks and the naive baseline they are measured against, in one run.
"""

from __future__ import annotations

import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from benchmarks.action import p7_action_overhead
from testkit.remote import GIT_ENV
from testkit.remote import Remote
from testkit.remote import git
from testkit.remote import make_bare_remote
from testkit.server import Server

ENVIRONMENTS = ("development", "staging", "production")


def manifest(app: str, version: int, env: str, size: int = 4000) -> bytes:
    """A Deployment-like manifest of about ``size`` bytes, unique per release."""
    head = (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}\n"
        f"  labels: {{env: {env}}}\nspec:\n  replicas: 2\n  template:\n    spec:\n"
        f"      containers:\n      - name: {app}\n        image: registry/{app}:{version}\n"
    )
    padding = "".join(f"        # line {i} of the rendered chart\n" for i in range(size // 40))
    return (head + padding).encode()


def slow_remote(remote: Remote, delay: float) -> None:
    """Make every push to ``remote`` take ``delay`` seconds (a hosted forge's hooks)."""
    hook = remote.path / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\ncat >/dev/null\nsleep {delay}\n")
    hook.chmod(0o755)


class Naive:
    """One CI job's warm clone of the manifest repository."""

    def __init__(self, remote: Remote, where: Path) -> None:
        self.path = where
        git("clone", "-q", remote.url, str(where), cwd=where.parent)
        git("config", "pull.rebase", "true", cwd=where)

    def release(self, app: str, version: int, manifests: dict[str, bytes]) -> None:
        """Write Kuberpult's release files, commit and push, rebasing until the push lands."""
        base = self.path / "applications" / app / "releases" / str(version)
        paths = []
        for env, content in manifests.items():
            target = base / "environments" / env / "manifests.yaml"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            paths.append(str(target.relative_to(self.path)))
        (base / "created_at").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        paths.append(str((base / "created_at").relative_to(self.path)))
        git("add", "--", *paths, cwd=self.path)
        git("commit", "-q", "-m", f'created version {version} of "{app}"', cwd=self.path)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            pushed = subprocess.run(
                ["git", "push", "-q", "origin", "HEAD:main"],
                cwd=self.path,
                env={**os.environ, **GIT_ENV},
                capture_output=True,
                timeout=120,
                check=False,
            )
            if pushed.returncode == 0:
                return
            git("pull", "-q", "--rebase", "origin", "main", cwd=self.path)
            # A little jitter, as CI scripts add, or 16 clients livelock on the branch.
            time.sleep(random.uniform(0, 0.05))
        raise RuntimeError("the naive client never got its push in")


def seeded_remote(where: Path) -> Remote:
    """A bare remote with one commit on main (clones need a branch to start from)."""
    remote = make_bare_remote(where)
    remote.push_files(where.parent, {"README.md": "manifest repository\n"}, "initial commit")
    return remote


def our_server(base: Path, remote: Remote, workers: int = 2, **env: str) -> Server:
    """kuberpult-lite on ``remote``: gunicorn, default settings, API open on loopback."""
    settings = {
        "KUBERPULT_API_ENABLE_DESPITE_NO_AUTH": "true",
        "KUBERPULT_GIT_URL": remote.url,
        **env,
    }
    return Server(base / "data", settings, workers=workers).start(timeout=120)


def post(server: Server, app: str, version: int, manifests: dict[str, bytes]) -> None:
    """One release through the HTTP API; anything but 201 is a benchmark error."""
    response = server.release(app, manifests, fields={"version": str(version)}, timeout=120)
    if response.status_code != 201:
        raise RuntimeError(f"release failed: {response.status_code} {response.text}")


def timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def p1_latency(base: Path, count: int = 30) -> tuple[float, float]:
    """Median latency of one 3-environment release, sequential: (ours, naive) seconds."""
    server = our_server(base / "ours", seeded_remote(base / "ours" / "remote.git"))
    naive_remote = seeded_remote(base / "naive" / "remote.git")
    naive = Naive(naive_remote, base / "naive" / "clone")
    ours, theirs = [], []
    try:
        for version in range(1, count + 1):
            manifests = {env: manifest("svc", version, env) for env in ENVIRONMENTS}
            ours.append(timed(lambda: post(server, "svc", version, manifests)))  # noqa: B023
            theirs.append(timed(lambda: naive.release("svc", version, manifests)))  # noqa: B023
    finally:
        server.stop()
    return statistics.median(ours), statistics.median(theirs)


def concurrent(clients: int, releases: int, send: Callable[[int, int], None]) -> float:
    """Seconds for ``clients`` threads to send ``releases`` releases in all."""
    per_client = releases // clients

    def client(index: int) -> None:
        for number in range(per_client):
            send(index, number)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return time.perf_counter() - started


def p2_throughput(
    base: Path,
    clients: int = 16,
    releases: int = 400,
    delay: float = 0.0,
    pushes: list[int] | None = None,
    runs: int = 1,
) -> tuple[float, float]:
    """Seconds for ``releases`` releases from ``clients`` concurrent clients: (ours, naive).
    Ours is the median of ``runs`` runs, each on a new server and remote (one takes seconds,
    and this machine's speed drifts by tens of percent between them); the naive clients run
    once (they take minutes). ``pushes``, when given, gets the number of commits of each of
    our pushes (of the last run)."""
    times = []
    for run in range(runs):
        times.append(our_throughput(base / f"ours-{run}", clients, releases, delay, pushes))
    if runs > 1:
        shown = ", ".join(f"{releases / seconds:.0f}/s" for seconds in times)
        print(f"  ours, {runs} runs: {shown}; the median counts", flush=True)
    ours = statistics.median(times)
    print(f"  ours: {releases} releases in {ours:.1f} s; now the naive clients", flush=True)
    naive_remote = seeded_remote(base / "naive" / "remote.git")
    if delay:
        slow_remote(naive_remote, delay)
    clones = [Naive(naive_remote, base / "naive" / f"clone-{c}") for c in range(clients)]
    naive = concurrent(
        clients,
        releases,
        lambda c, n: clones[c].release(
            f"app-{c}", n + 1, {env: manifest(f"app-{c}", n, env) for env in ENVIRONMENTS}
        ),
    )
    return ours, naive


def our_throughput(
    base: Path, clients: int, releases: int, delay: float, pushes: list[int] | None
) -> float:
    """Seconds for our server (2 workers) to take ``releases`` releases from ``clients``."""
    remote = seeded_remote(base / "remote.git")
    git("config", "core.logAllRefUpdates", "always", cwd=remote.path)
    start = remote.head()
    if delay:
        slow_remote(remote, delay)
    server = our_server(base, remote, workers=2)
    try:
        seconds = concurrent(
            clients,
            releases,
            lambda c, n: post(
                server,
                f"app-{c}",
                n + 1,
                {env: manifest(f"app-{c}", n, env) for env in ENVIRONMENTS},
            ),
        )
    finally:
        server.stop()
    if pushes is not None:
        pushes[:] = commits_per_push(remote, start)
    return seconds


def commits_per_push(remote: Remote, start: str | None) -> list[int]:
    """How many commits each push to ``remote`` brought after ``start``, oldest first (from
    its reflog)."""
    pushed = git("reflog", "show", "--format=%H", "main", cwd=remote.path).split()[::-1]
    heads = ([start] if start else []) + pushed
    return [
        int(git("rev-list", "--count", f"{old}..{new}", cwd=remote.path))
        for old, new in zip(heads, heads[1:], strict=False)
    ]


def p6_replicas(base: Path, clients: int = 16, releases: int = 400) -> dict[str, float]:
    """The P2 load on one SQLite server, then on two replicas x 2 workers sharing one
    PostgreSQL database (clients alternate between them); then the exporting replica is
    SIGKILLed in a burst and the survivor's takeover is timed."""
    from testkit.postgres import PostgresServer

    def load(servers: list[Server]) -> float:
        return concurrent(
            clients,
            releases,
            lambda c, n: post(
                servers[c % len(servers)],
                f"app-{c}",
                n + 1,
                {env: manifest(f"app-{c}", n, env) for env in ENVIRONMENTS},
            ),
        )

    single = our_server(base / "sqlite", seeded_remote(base / "sqlite" / "remote.git"))
    try:
        sqlite_seconds = load([single])
    finally:
        single.stop()
    database = PostgresServer().start()
    replicas: list[Server] = []
    try:
        remote = seeded_remote(base / "pg" / "remote.git")
        url = database.database()
        for name in ("a", "b"):
            settings = {
                "KUBERPULT_API_ENABLE_DESPITE_NO_AUTH": "true",
                "KUBERPULT_GIT_URL": remote.url,
                "KUBERPULT_DATABASE_URL": url,
                "KUBERPULT_REPLICA_NAME": name,
            }
            replicas.append(Server(base / "pg" / name, settings, workers=2).start(timeout=120))
        postgres_seconds = load(replicas)
        takeover, died = failover(replicas)
    finally:
        for replica in replicas:
            replica.stop()
        database.stop()
    return {
        "sqlite": sqlite_seconds,
        "postgres": postgres_seconds,
        "takeover": takeover,
        "died": died,
    }


def failover(replicas: list[Server], burst: int = 48) -> tuple[float, int]:
    """Seconds from SIGKILLing the first replica in a burst of releases sent to it until the
    second has pushed every release the first had stored; and how many requests died."""
    first, second = replicas
    died: list[int] = []

    def send(number: int) -> None:
        try:
            first.release("failover", {"development": f"n: {number}\n"}, timeout=30)
        except requests.RequestException:
            died.append(number)

    with ThreadPoolExecutor(12) as pool:
        for number in range(burst):
            pool.submit(send, number)
        time.sleep(0.3)
        first.kill()
        killed = time.perf_counter()
    while requests.get(second.url + "/healthz", timeout=5).json()["pending_releases"]:
        time.sleep(0.02)
    return time.perf_counter() - killed, len(died)


def seed_large_repo(remote: Remote, work: Path, apps: int, per_app: int) -> None:
    """Write ``apps`` x ``per_app`` releases into ``remote`` with one fast-import commit."""
    lines = [
        b"commit refs/heads/main",
        b"committer Seed <seed@example.com> 1700000000 +0000",
        b"data 4",
        b"seed",
    ]
    for app in range(apps):
        for version in range(1, per_app + 1):
            base = f"applications/seed-{app}/releases/{version}"
            for env in ENVIRONMENTS:
                content = manifest(f"seed-{app}", version, env, size=400)
                lines += [
                    f"M 100644 inline {base}/environments/{env}/manifests.yaml".encode(),
                    f"data {len(content)}".encode(),
                    content,
                ]
            lines += [
                f"M 100644 inline {base}/created_at".encode(),
                b"data 20",
                b"2026-01-01T00:00:00Z",
            ]
    stream = b"\n".join(lines) + b"\n"
    subprocess.run(
        ["git", "fast-import", "--quiet"], input=stream, cwd=remote.path, check=True, timeout=600
    )


def release_timed(server: Server, version: int) -> float:
    """Seconds for one 3-environment release of application svc."""
    manifests = {env: manifest("svc", version, env) for env in ENVIRONMENTS}
    return timed(lambda: post(server, "svc", version, manifests))


def naive_timed(naive: Naive, version: int) -> float:
    """Seconds for one 3-environment release of application naive, the naive way."""
    manifests = {env: manifest("naive", version, env) for env in ENVIRONMENTS}
    return timed(lambda: naive.release("naive", version, manifests))


class PushFloor:
    """The remote's own cost of one push: a one-file commit pushed from a warm clone (what no
    server can go below on this repository). It pushes to an exact copy of the repository, so
    that its commits never make our server fetch."""

    def __init__(self, remote: Remote, work: Path) -> None:
        copy = work / "floor-remote.git"
        shutil.copytree(remote.path, copy, symlinks=True)
        self.clone = work / "floor-clone"
        git("clone", "-q", str(copy), str(self.clone), cwd=work)
        self.number = 0

    def sample(self) -> float:
        """Seconds for one such push."""
        self.number += 1
        (self.clone / "floor.txt").write_text(f"{self.number}\n")
        git("add", "floor.txt", cwd=self.clone)
        git("commit", "-q", "-m", f"floor {self.number}", cwd=self.clone)
        started = time.perf_counter()
        git("push", "-q", "origin", "HEAD:main", cwd=self.clone)
        return time.perf_counter() - started


def p4_large_repo(base: Path, count: int = 25) -> dict[str, float]:
    """Median latency with 10,000 existing releases over 200 applications and on an empty
    repository, for us, for the remote's push floor (sampled in turn with ours, so both see
    the same moments of a noisy machine) and for the naive client (whose ratio shows what the
    remote's own per-push cost adds): keys ours-, floor-, naive- x large, empty."""
    results = {}
    for name, apps, per_app in (("large", 200, 50), ("empty", 0, 0)):
        remote = make_bare_remote(base / name / "remote.git")
        if apps:
            seed_large_repo(remote, base / name, apps, per_app)
        else:
            remote.push_files(base / name, {"README.md": "empty\n"}, "initial commit")
        server = our_server(base / name, remote)
        floor = PushFloor(remote, base / name)
        ours, floors = [], []
        try:
            for version in range(1, count + 1):
                ours.append(release_timed(server, version))
                floors.append(floor.sample())
        finally:
            server.stop()
        results[f"ours-{name}"] = statistics.median(ours)
        results[f"floor-{name}"] = statistics.median(floors)
        naive = Naive(remote, base / name / "naive-clone")
        naive_samples = [naive_timed(naive, version) for version in range(1, count + 1)]
        results[f"naive-{name}"] = statistics.median(naive_samples)
    return results


def worker_rss_peaks(server: Server) -> list[int]:
    """Peak resident memory (VmHWM, bytes) of each gunicorn worker of ``server``."""
    assert server.process is not None
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    peaks = []
    for pid in children.read_text().split():
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) * 1024)
    return peaks


def p5_memory(base: Path, releases: int = 6) -> int:
    """Peak RSS of the largest worker after taking 10 MB manifests, in bytes."""
    server = our_server(base, seeded_remote(base / "remote.git"))
    try:
        big = b"data: |\n" + b"".join(
            b"  " + os.urandom(30).hex().encode() + b"\n" for _ in range(10 * 1024 * 1024 // 63)
        )
        for version in range(1, releases + 1):
            post(server, "big", version, {"production": big + f"# {version}\n".encode()})
        return max(worker_rss_peaks(server))
    finally:
        server.stop()


def report(rows: list[tuple[str, str, str, str]], *row: str) -> None:
    """Keep a result row and show it at once (a long run shows progress)."""
    rows.append((row[0], row[1], row[2], row[3]))
    print(" | ".join(row), flush=True)


def main(argv: list[str]) -> int:
    """Run the chosen benchmarks (default all) and print the table."""
    chosen = set(argv) or {"P1", "P2", "P3", "P4", "P5", "P6", "P7"}
    rows: list[tuple[str, str, str, str]] = []
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, git {git('--version', cwd=Path.cwd()).split()[-1]}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="kuberpult-bench-") as temp:
        base = Path(temp)
        if "P1" in chosen:
            ours, naive = p1_latency(base / "p1")
            report(
                rows,
                "P1 median latency, 1 release x 3 envs, sequential",
                f"{ours * 1000:.0f} ms vs {naive * 1000:.0f} ms",
                f"{ours / naive:.2f}",
                "<= 1.0",
            )
        if "P2" in chosen:
            ours, naive = p2_throughput(base / "p2", runs=3)
            report(
                rows,
                "P2 throughput, 16 clients, 400 releases (ours: median of 3 runs)",
                f"{400 / ours:.0f}/s vs {400 / naive:.1f}/s",
                f"{naive / ours:.1f}x",
                ">= 25x and >= 150/s",
            )
        if "P3" in chosen:
            pushes: list[int] = []
            ours, naive = p2_throughput(
                base / "p3", clients=32, releases=32, delay=0.5, pushes=pushes
            )
            report(
                rows,
                "P3 total time, 32 concurrent releases, push takes 0.5 s",
                f"{ours:.1f} s vs {naive:.1f} s; our pushes carried "
                + "+".join(str(n) for n in pushes)
                + " commits",
                f"{ours / naive:.2f}",
                "ours <= 1.5 s",
            )
        if "P6" in chosen:
            p6 = p6_replicas(base / "p6")
            report(
                rows,
                "P6 P2's load on 2 replicas x 2 workers + PostgreSQL vs 1 server + SQLite",
                f"{400 / p6['postgres']:.0f}/s vs {400 / p6['sqlite']:.0f}/s",
                f"{p6['sqlite'] / p6['postgres']:.2f}x",
                ">= 0.8x",
            )
            report(
                rows,
                "P6 failover: exporting replica SIGKILLed in a burst",
                f"{p6['died']:.0f} of 48 requests died; the survivor had pushed everything "
                f"{p6['takeover']:.2f} s after the kill",
                "-",
                "<= 5 s",
            )
        if "P4" in chosen:
            p4 = p4_large_repo(base / "p4")
            growth = p4["ours-large"] - p4["ours-empty"]
            floor = p4["floor-large"] - p4["floor-empty"]
            report(
                rows,
                "P4 growth over the remote's own push growth (10,000 releases vs empty)",
                f"ours {growth * 1000:+.0f} ms; the remote's push floor "
                f"{p4['floor-empty'] * 1000:.0f} -> {p4['floor-large'] * 1000:.0f} ms "
                f"({floor * 1000:+.0f} ms)",
                f"{(growth - floor) * 1000:+.0f} ms",
                "<= +10 ms",
            )
            report(
                rows,
                "P4 latency, 10,000 releases / 200 apps vs empty repo",
                f"ours {p4['ours-large'] * 1000:.0f} vs {p4['ours-empty'] * 1000:.0f} ms; "
                f"naive {p4['naive-large'] * 1000:.0f} vs {p4['naive-empty'] * 1000:.0f} ms "
                f"(ratio {p4['naive-large'] / p4['naive-empty']:.2f})",
                f"{p4['ours-large'] / p4['ours-empty']:.2f}",
                "<= 1.25",
            )
        if "P5" in chosen:
            peak = p5_memory(base / "p5")
            report(
                rows,
                "P5 peak RSS per worker, 10 MB manifests",
                f"{peak / 2**20:.0f} MB",
                "-",
                "<= 120 MB",
            )
        if "P7" in chosen:
            p7 = p7_action_overhead(base / "p7")
            report(
                rows,
                "P7 the Action's own overhead per release, cold runner (signed)",
                f"{p7['overhead']:.2f} s (step {p7['action']:.2f} s, server {p7['server']:.2f} s)"
                f"; before: venv + pip install {p7['former']:.1f} s",
                f"{p7['overhead'] / (p7['overhead'] + p7['former']):.2f}",
                "<= 2 s",
            )
    print("\n| benchmark | ours vs naive | ratio | target |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
