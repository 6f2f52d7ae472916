"""A randomized crash soak: workers are killed with SIGKILL at random moments while batches
of releases, team changes and lock edits are in flight. Afterwards every answered release is
on the remote exactly once, no release is committed twice, and the store and the remote agree.

Seeded and short by default (CI); ``SOAK_ROUNDS=200 SOAK_SEED=7 pytest tests/test_crash_soak.py``
runs the long mode.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from testkit.remote import Remote
from testkit.server import Server
from testkit.server import wait_for

ROUNDS = int(os.environ.get("SOAK_ROUNDS", "8"))
SEED = int(os.environ.get("SOAK_SEED", "20261127"))
APPS = ("alpha", "beta", "gamma")
TEAMS = ("red", "blue")


def worker_pids(server: Server) -> list[int]:
    assert server.process is not None
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    return [int(pid) for pid in children.read_text().split()]


def manifest(app: str, version: int) -> bytes:
    return f"kind: Deployment\napp: {app}\nversion: {version}\n".encode()


def send(server: Server, app: str, version: int, team: str) -> tuple[str, int, int | None]:
    try:
        response = server.release(
            app,
            {"development": manifest(app, version)},
            fields={"version": str(version), "team": team},
            timeout=60,
        )
        return app, version, response.status_code
    except requests.RequestException:
        return app, version, None  # the worker died under it: outcome unknown


def lock_edit(server: Server, rng: random.Random) -> None:
    url = f"{server.url}/environments/development/locks/soak-{rng.randint(1, 3)}"
    try:
        if rng.random() < 0.5:
            requests.put(url, json={"message": "soak"}, timeout=60)
        else:
            requests.delete(url, timeout=60)
    except requests.RequestException:
        pass


def test_random_kills_lose_and_duplicate_nothing(
    start_server, bare_remote: Remote, tmp_path: Path
) -> None:
    bare_remote.push_files(
        tmp_path, {"environments/development/config.json": '{"upstream":{"latest":true}}'}
    )
    server = start_server(bare_remote, workers=2, KUBERPULT_GIT_PUSH_TIMEOUT="10")
    rng = random.Random(SEED)  # noqa: S311 - a seeded test schedule, not a secret
    next_version = dict.fromkeys(APPS, 0)
    answered: dict[tuple[str, int], int | None] = {}
    teams: dict[tuple[str, int], str] = {}
    with ThreadPoolExecutor(max_workers=16) as pool:
        for _ in range(ROUNDS):
            jobs = []
            for _ in range(rng.randint(4, 12)):
                app = rng.choice(APPS)
                next_version[app] += 1
                key = (app, next_version[app])
                teams[key] = rng.choice(TEAMS)
                jobs.append(pool.submit(send, server, *key, teams[key]))
            for _ in range(rng.randint(0, 2)):
                pool.submit(lock_edit, server, rng)
            time.sleep(rng.uniform(0.0, 0.4))
            pids = worker_pids(server)
            if pids:
                os.kill(rng.choice(pids), signal.SIGKILL)
            for job in jobs:
                app, version, status = job.result()
                answered[(app, version)] = status
            assert wait_for(lambda: len(worker_pids(server)) == 2)  # gunicorn replaced it

    # A client resends what it got no answer for (or a 503 for); then everything settles. A
    # release the dead worker never stored may be too old by now (the cleanup rule): 400.
    for key, status in sorted(answered.items()):
        if status not in (200, 201):
            _, _, resent = send(server, *key, teams[key])
            assert resent in (200, 201) or (status is None and resent == 400), (key, resent)
            answered[key] = resent
    answered = {key: status for key, status in answered.items() if status != 400}
    assert wait_for(
        lambda: requests.get(server.url + "/healthz", timeout=5).json()["pending_releases"] == 0, 60
    )

    created = Counter(
        match.group(0)
        for line in bare_remote.log()
        if (match := re.match(r'created version \d+ of "[a-z]+"', line))
    )
    assert [line for line, count in created.items() if count > 1] == []
    ids = bare_remote.release_ids()
    assert len(ids) == len(set(ids))
    with sqlite3.connect(server.data_dir / "kuberpult.sqlite3") as db:
        stored = set(db.execute("select application, version from releases"))
        in_tree = set(
            db.execute(
                "select application, version from releases where removed_from_repo_at is null"
            )
        )
        states = Counter(state for (state,) in db.execute("select state from releases"))
    assert stored == set(answered)
    for app, version in answered:
        # History keeps every release commit, once; the tree keeps what cleanup left.
        assert created[f'created version {version} of "{app}"'] == 1, (app, version)
        if (app, version) in in_tree:
            path = f"applications/{app}/releases/{version}/environments/development/manifests.yaml"
            assert bare_remote.read(path) == manifest(app, version)
    on_remote = {
        (path.split("/")[1], int(path.split("/")[3]))
        for path in bare_remote.files()
        if path.startswith("applications/") and path.endswith("manifests.yaml")
    }
    assert in_tree == on_remote
    assert set(states) == {"pushed"}
