"""Environment configuration as Kuberpult keeps it: ``environments/<env>/config.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from server.repo.safe_tree import ApplyError
from server.repo.safe_tree import SafeTree


class InvalidRepositoryFile(ApplyError):
    """A file in the manifest repository cannot be parsed; the message names it."""

    code = "invalid_repository_file"


@dataclass(frozen=True)
class EnvironmentConfig:
    """One environment's config; a missing file is the empty config."""

    name: str
    upstream_latest: bool = False
    upstream_environment: str | None = None
    environment_group: str | None = None
    argocd: dict[str, Any] | None = None

    @property
    def group(self) -> str:
        """The environment group, which defaults to the environment's own name (as Kuberpult)."""
        return self.environment_group or self.name


def config_path(environment: str) -> tuple[str, ...]:
    """Where an environment's config lives in the repository."""
    return ("environments", environment, "config.json")


def read_config(tree: SafeTree, environment: str) -> EnvironmentConfig:
    """Read and parse an environment's config.

    :raises InvalidRepositoryFile: naming the file, when it is not the expected JSON.
    """
    path = "/".join(config_path(environment))
    content = tree.read(config_path(environment))
    if content is None:
        return EnvironmentConfig(environment)
    try:
        data = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidRepositoryFile(f"{path} is not valid JSON: {error}") from None
    except RecursionError:
        raise InvalidRepositoryFile(f"{path} nests too deeply to be a config") from None
    if not isinstance(data, dict):
        raise InvalidRepositoryFile(f"{path} must hold a JSON object")
    upstream = data.get("upstream")
    group = data.get("environmentGroup")
    argocd = data.get("argocd")
    # A wrong type is refused, falsy or not (Go's decoder refuses "argocd": [] just as "x").
    if (
        not isinstance(upstream, dict | None)
        or not isinstance((upstream or {}).get("latest") or False, bool)
        or not isinstance((upstream or {}).get("environment") or "", str)
        or not isinstance(group, str | None)
        or not isinstance(argocd, dict | None)
    ):
        raise InvalidRepositoryFile(
            f"{path} has a field of the wrong type (upstream.latest must be a boolean; "
            "upstream.environment and environmentGroup strings; argocd an object)"
        )
    upstream = upstream or {}
    return EnvironmentConfig(
        name=environment,
        upstream_latest=upstream.get("latest") or False,
        upstream_environment=upstream.get("environment") or None,
        environment_group=group or None,
        argocd=argocd,
    )


def render_config(
    *, upstream_latest: bool = False, upstream: str | None = None, group: str | None = None
) -> bytes:
    """The config file as Kuberpult's CreateEnvironment writes it (2-space indented JSON)."""
    data: dict[str, Any] = {}
    if upstream_latest or upstream:
        data["upstream"] = {"latest": True} if upstream_latest else {"environment": upstream}
    if group:
        data["environmentGroup"] = group
    return (json.dumps(data, indent=2) + "\n").encode()
