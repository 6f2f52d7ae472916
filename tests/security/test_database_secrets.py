"""The database password never shows: not at start-up, not in /readyz, not in an error, not
in the migrate command's output (whether it comes in the URL or from a password file)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import requests

from testkit.remote import Remote
from testkit.server import SERVER_BIN


def migrate(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SERVER_BIN), "migrate"],
        env={"PATH": os.environ["PATH"], "KUBERPULT_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def without_password(url: str) -> tuple[str, str]:
    """The URL without its password, and the password."""
    parts = urlsplit(url)
    assert parts.password
    netloc = f"{parts.username}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), parts.password


def test_migrate_says_what_it_did_without_the_password(tmp_path: Path, database_url: str) -> None:
    _, password = without_password(database_url)
    first = migrate(tmp_path, KUBERPULT_DATABASE_URL=database_url)
    assert first.returncode == 0, first.stderr
    assert "schema version" in first.stdout
    assert password not in first.stdout + first.stderr
    again = migrate(tmp_path, KUBERPULT_DATABASE_URL=database_url)
    assert again.returncode == 0, again.stderr


def test_a_password_file_works_and_a_wrong_one_is_refused_quietly(
    tmp_path: Path, database_url: str
) -> None:
    url, password = without_password(database_url)
    right = tmp_path / "pw"
    right.write_text(password + "\n")
    assert (
        migrate(
            tmp_path, KUBERPULT_DATABASE_URL=url, KUBERPULT_DATABASE_PASSWORD_FILE=str(right)
        ).returncode
        == 0
    )
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password-" + password[::-1])
    refused = migrate(
        tmp_path, KUBERPULT_DATABASE_URL=url, KUBERPULT_DATABASE_PASSWORD_FILE=str(wrong)
    )
    assert refused.returncode == 1
    assert "database is unavailable" in refused.stderr
    assert password[::-1] not in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_url_that_is_not_postgresql_is_refused(tmp_path: Path) -> None:
    refused = migrate(tmp_path, KUBERPULT_DATABASE_URL="mysql://root:hunter2@db/x")
    assert refused.returncode == 2
    assert "KUBERPULT_DATABASE_URL must be a postgresql:// URL" in refused.stderr
    assert "hunter2" not in refused.stderr


def test_the_running_server_never_shows_the_password(
    start_server, bare_remote: Remote, database_url: str
) -> None:
    _, password = without_password(database_url)
    server = start_server(bare_remote, KUBERPULT_DATABASE_URL=database_url)
    assert server.release("app", fields={"version": "1"}).status_code == 201
    pages = [
        requests.get(f"{server.url}{path}", timeout=10).text
        for path in ("/readyz", "/healthz", "/", "/api/environments", "/metrics")
    ]
    assert "database postgresql://***@127.0.0.1" in server.log()  # the start-up line names it
    for text in [*pages, server.log()]:
        assert password not in text
