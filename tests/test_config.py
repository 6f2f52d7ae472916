"""Unit tests for the configuration object, and the CLI's refusal of bad configuration."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from server.config import Config
from server.config import ConfigError
from testkit.server import SERVER_BIN


def test_defaults_use_an_embedded_remote_in_the_data_dir(tmp_path: Path) -> None:
    config = Config.from_env({"KUBERPULT_DATA_DIR": str(tmp_path)})
    assert config.embedded_remote
    assert config.git_url == str(tmp_path / "manifests.git")
    assert config.git_branch == "main"
    assert config.database_path == tmp_path / "kuberpult.sqlite3"
    assert not config.api_enable_despite_no_auth
    assert config.git_push_timeout == 30


def test_values_are_read_with_kuberpults_names(tmp_path: Path) -> None:
    config = Config.from_env(
        {
            "KUBERPULT_DATA_DIR": str(tmp_path),
            "KUBERPULT_GIT_URL": "ssh://git@example.com/manifests.git",
            "KUBERPULT_GIT_BRANCH": "release/prod",
            "KUBERPULT_GIT_AUTHOR_NAME": "Release Bot",
            "KUBERPULT_GIT_AUTHOR_EMAIL": "bot@example.com",
            "KUBERPULT_API_ENABLE_DESPITE_NO_AUTH": "TRUE",
            "KUBERPULT_GIT_PUSH_TIMEOUT": "12.5",
        }
    )
    assert not config.embedded_remote
    assert config.git_url == "ssh://git@example.com/manifests.git"
    assert config.git_branch == "release/prod"
    assert (config.git_author_name, config.git_author_email) == ("Release Bot", "bot@example.com")
    assert config.api_enable_despite_no_auth
    assert config.git_push_timeout == 12.5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KUBERPULT_API_ENABLE_DESPITE_NO_AUTH", "maybe"),
        ("KUBERPULT_GIT_BRANCH", "-delete"),
        ("KUBERPULT_GIT_BRANCH", "a..b"),
        ("KUBERPULT_GIT_BRANCH", "x.lock"),
        ("KUBERPULT_GIT_PUSH_TIMEOUT", "soon"),
        ("KUBERPULT_GIT_PUSH_TIMEOUT", "0"),
        ("KUBERPULT_GIT_URL", "--upload-pack=touch /tmp/x"),
        ("KUBERPULT_GIT_AUTHOR_NAME", "a <b>"),
        ("KUBERPULT_MAX_COMMITS_PER_PUSH", "2.5"),
    ],
)
def test_malformed_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Config.from_env({name: value})


def test_server_refuses_to_start_on_bad_configuration(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(SERVER_BIN)],
        env={
            "PATH": "/usr/bin:/bin",
            "KUBERPULT_DATA_DIR": str(tmp_path),
            "KUBERPULT_GIT_PUSH_TIMEOUT": "soon",
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "KUBERPULT_GIT_PUSH_TIMEOUT" in result.stderr
