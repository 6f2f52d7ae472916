"""The configuration reference cannot drift: the README's table is what
``kuberpult-server config --reference`` prints, and both list exactly the variables the server
reads. ``kuberpult-server config`` and ``--help`` say what an operator needs, and no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from server.config import KNOWN_VARIABLES
from server.variables import VARIABLES
from server.variables import reference_table
from testkit.server import ROOT
from testkit.server import SERVER_BIN


def server_command(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SERVER_BIN), *args],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_variable_the_server_reads_is_in_the_reference_once() -> None:
    names = [variable.name for variable in VARIABLES]
    assert len(names) == len(set(names))
    assert set(names) == KNOWN_VARIABLES


def test_the_readme_table_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- config-reference")
    table = readme[readme.index("\n", start) + 1 : readme.index("<!-- /config-reference -->")]
    assert table == reference_table()
    printed = server_command("config", "--reference")
    assert printed.returncode == 0 and printed.stdout == table


def test_config_prints_effective_values_without_secrets(tmp_path: Path) -> None:
    shown = server_command(
        "config",
        KUBERPULT_DATA_DIR=str(tmp_path),
        KUBERPULT_DATABASE_URL="postgresql://kl:db-s3cret@db.internal:5432/kp",
        KUBERPULT_GIT_URL="https://x-access-token:ghp_s3cret@github.com/acme/manifests.git",
        KUBERPULT_MAX_QUEUE="7",
    )
    assert shown.returncode == 0, shown.stderr
    assert "db-s3cret" not in shown.stdout and "ghp_s3cret" not in shown.stdout
    lines = dict(line.split("=", 1) for line in shown.stdout.splitlines())
    assert lines["KUBERPULT_MAX_QUEUE"] == "7"
    assert lines["KUBERPULT_DATABASE_URL"] == "postgresql://***@db.internal:5432/kp"
    assert lines["KUBERPULT_GIT_URL"] == "https://***@github.com/acme/manifests.git"
    assert lines["KUBERPULT_OPEN_READS"] == "false"
    embedded = server_command("config", KUBERPULT_DATA_DIR=str(tmp_path))
    assert "(embedded default)" in embedded.stdout


def test_config_refuses_what_the_server_would_refuse(tmp_path: Path) -> None:
    refused = server_command("config", KUBERPULT_DATA_DIR=str(tmp_path), KUBERPULT_MAX_QUEUEE="1")
    assert refused.returncode == 2
    assert "did you mean KUBERPULT_MAX_QUEUE?" in refused.stderr


def test_server_help_names_the_subcommands_and_the_reference() -> None:
    shown = server_command("--help")
    assert shown.returncode == 0
    for text in ("create-environment", "migrate", "config", "config\n--reference", "KUBERPULT_"):
        assert text in shown.stdout, text


def test_a_client_only_install_says_how_to_get_the_server() -> None:
    # The client install has none of the server's packages; flask stands for all of them.
    code = "import sys; sys.modules['flask'] = None; from server.launcher import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert "pip install 'kuberpult-lite[server]'" in result.stderr
    assert "Traceback" not in result.stderr
