"""Several replicas on one PostgreSQL database: any replica accepts releases, one at a time
exports, and killing a replica (or the database) loses and duplicates nothing. Real gunicorn
servers, a real PostgreSQL server, a real bare remote."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from testkit.postgres import PostgresServer
from testkit.remote import Remote
from testkit.server import Server
from testkit.server import unique_app
from testkit.server import wait_for

LATEST = '{"upstream":{"latest":true}}'


def two_replicas(
    start_server: Callable[..., Server], remote: Remote, database_url: str, tmp_path: Path
) -> tuple[Server, Server]:
    remote.push_files(tmp_path, {"environments/development/config.json": LATEST})
    settings = {"KUBERPULT_DATABASE_URL": database_url, "KUBERPULT_GIT_PUSH_TIMEOUT": "20"}
    first = start_server(remote, name="replica-a", KUBERPULT_REPLICA_NAME="a", **settings)
    second = start_server(remote, name="replica-b", KUBERPULT_REPLICA_NAME="b", **settings)
    return first, second


def commits_per_release(remote: Remote) -> Counter[str]:
    """How many commits carry each Release-Id trailer: exactly once means 1 for each."""
    return Counter(remote.release_ids())


def test_two_replicas_take_releases_and_each_lands_once(
    start_server, bare_remote: Remote, database_url: str, tmp_path: Path
) -> None:
    replicas = two_replicas(start_server, bare_remote, database_url, tmp_path)
    apps = [unique_app() for _ in range(16)]
    jobs = [(replicas[i % 2], apps[i % 16], i // 16 + 1) for i in range(64)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(
            pool.map(lambda job: job[0].release(job[1], fields={"version": str(job[2])}), jobs)
        )
    assert [a.status_code for a in answers] == [201] * 64, [a.text for a in answers if a.ok]
    for _, app, version in jobs:
        assert bare_remote.exists(f"applications/{app}/releases/{version}")
    counts = commits_per_release(bare_remote)
    assert len(counts) == 64 and set(counts.values()) == {1}
    # Both replicas answer the read API from the one database.
    for replica in replicas:
        listed = requests.get(f"{replica.url}/api/applications", timeout=10).json()
        assert {a["name"] for a in listed["applications"]} >= set(apps)


def test_the_same_release_sent_to_both_at_once_is_created_once(
    start_server, bare_remote: Remote, database_url: str, tmp_path: Path
) -> None:
    replicas = two_replicas(start_server, bare_remote, database_url, tmp_path)
    for _ in range(3):
        app = unique_app()
        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(
                pool.map(
                    lambda replica, app=app: replica.release(app, fields={"version": "1"}), replicas
                )
            )
        assert sorted(a.status_code for a in answers) == [200, 201]
    # Without a version: numbers are unique across replicas.
    app = unique_app()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda i: replicas[i % 2].release(app), range(16)))
    assert [a.status_code for a in answers] == [201] * 16
    assert sorted(int(a.headers["X-Release-Version"]) for a in answers) == list(range(1, 17))


def test_readiness_names_the_replica_and_the_database(
    start_server, bare_remote: Remote, database_url: str, tmp_path: Path
) -> None:
    first, second = two_replicas(start_server, bare_remote, database_url, tmp_path)
    assert first.release(unique_app()).status_code == 201
    ready = requests.get(f"{second.url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["replica"] == "b"


def test_killing_the_exporting_replica_loses_and_duplicates_nothing(
    start_server, bare_remote: Remote, database_url: str, tmp_path: Path
) -> None:
    first, second = two_replicas(start_server, bare_remote, database_url, tmp_path)
    apps = [unique_app() for _ in range(8)]
    sent = [(apps[i % 8], i // 8 + 1) for i in range(48)]

    def send(job: tuple[str, int]) -> int | None:
        try:
            return first.release(job[0], fields={"version": str(job[1])}, timeout=30).status_code
        except requests.RequestException:
            return None  # the replica died with the request

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = pool.map(send, sent)
        time.sleep(0.3)  # in the middle of the burst
        first.kill()
        killed_at = time.monotonic()
        statuses = dict(zip(sent, answers, strict=True))
    # The survivor takes over whatever the dead replica stored: its recovery round pushes it.
    assert wait_for(
        lambda: requests.get(f"{second.url}/healthz", timeout=5).json()["pending_releases"] == 0,
        30,
    )
    takeover = time.monotonic() - killed_at
    unanswered = sum(1 for status in statuses.values() if status is None)
    print(
        f"takeover: {unanswered} of 48 requests died with the replica; the survivor had pushed "
        f"every stored release {takeover:.2f} s after the kill"
    )
    assert unanswered > 0, "the kill came after the burst: nothing was tested"
    # What got no 201 is resent to the survivor, as a client with retries would.
    for job, status in statuses.items():
        if status not in (200, 201):
            resent = second.release(job[0], fields={"version": str(job[1])})
            assert resent.status_code in (200, 201), resent.text
    for app, version in sent:
        assert bare_remote.exists(f"applications/{app}/releases/{version}"), (app, version)
    counts = commits_per_release(bare_remote)
    assert len(counts) == 48 and set(counts.values()) == {1}, counts.most_common(3)


def test_a_database_restart_is_survived(
    start_server,
    bare_remote: Remote,
    postgres_server: PostgresServer,
    database_url: str,
    tmp_path: Path,
) -> None:
    first, second = two_replicas(start_server, bare_remote, database_url, tmp_path)
    assert first.release(unique_app()).status_code == 201
    postgres_server.kill()
    down = second.release(unique_app())
    assert down.status_code == 503, down.text
    assert "database" in down.json()["error"]["message"]
    not_ready = requests.get(f"{second.url}/readyz", timeout=10)
    assert not_ready.status_code == 503 and "database" in not_ready.text
    postgres_server.start()
    app = unique_app()
    assert wait_for(lambda: second.release(app).status_code in (200, 201), 30)
    assert first.release(unique_app()).status_code == 201
    counts = commits_per_release(bare_remote)
    assert set(counts.values()) == {1}


def test_a_worker_restarted_while_the_database_is_down_keeps_the_server_up(
    start_server, bare_remote: Remote, postgres_server: PostgresServer, database_url: str
) -> None:
    server = start_server(bare_remote, KUBERPULT_DATABASE_URL=database_url)
    assert server.release(unique_app()).status_code == 201
    postgres_server.kill()
    # A worker dies (a crash, a timeout) while the database is away: gunicorn starts another,
    # which must come up anyway. A worker that fails to boot takes the whole server down.
    victim = server.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    assert wait_for(
        lambda: len(server.worker_pids()) == 2 and victim not in server.worker_pids(), 30
    )
    time.sleep(3)  # the new worker's start has run by now
    assert server.process is not None and server.process.poll() is None, server.log()
    down = server.release(unique_app())
    assert down.status_code == 503, down.text
    postgres_server.start()
    app = unique_app()
    assert wait_for(lambda: server.release(app).status_code in (200, 201), 30)
