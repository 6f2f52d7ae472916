"""Argo CD's files: ``argocd/v1alpha1/<env>.yaml``, an AppProject and one Application per
deployed application, for every environment whose ``config.json`` has an ``argocd`` object.

Rendered as Kuberpult v12's git mode does (``pkg/argocd/render.go``): re-rendered after every
commit from the tree itself, so a file never disagrees with the deployments next to it; written
only when its bytes change. A file is never deleted (as Kuberpult: an environment that drops its
``argocd`` section keeps its last file, so Argo CD does not prune a whole environment because a
config was edited).

Over 250 lines: the two objects and the checks of the config section they come from belong
together (each field is checked where it is read).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from server.repo import goyaml
from server.repo.environments import InvalidRepositoryFile
from server.repo.environments import config_path
from server.repo.environments import read_config
from server.repo.safe_tree import Parts
from server.repo.safe_tree import SafeTree
from server.repo.safe_tree import changed

API_VERSION = "argoproj.io/v1alpha1"
FINALIZER = "resources-finalizer.argocd.argoproj.io"
TEAM_KEY = "com.freiheit.kuberpult/team"
_MAX_FILE_NAME = 255  # bytes, as Linux file systems allow


@dataclass(frozen=True)
class ArgoCdSettings:
    """Where Argo CD should fetch from: the remote (without credentials) and the branch."""

    repo_url: str
    target_revision: str
    enabled: bool = True


def file_parts(environment: str) -> Parts:
    """Where an environment's Argo CD file lives."""
    return ("argocd", "v1alpha1", f"{environment}.yaml")


def update_files(tree: SafeTree, settings: ArgoCdSettings) -> list[str]:
    """Re-render every environment's file; return the paths whose bytes changed.

    :raises InvalidRepositoryFile: an ``argocd`` section holds a field of the wrong type (the
        message names the file and the field); nothing is written.
    """
    if not settings.enabled:
        return []
    rendered: list[tuple[str, bytes]] = []
    for environment in tree.list(("environments",)):
        if not tree.is_dir(("environments", environment)):
            continue
        argocd = read_config(tree, environment).argocd
        if argocd is None:
            continue
        if len(f"{environment}.yaml".encode()) > _MAX_FILE_NAME:
            raise InvalidRepositoryFile(
                f"environments/{environment[:40]}...: the environment's name is too long for "
                f"its Argo CD file (argocd/v1alpha1/<env>.yaml); rename or remove it"
            )
        section = _Section("/".join(config_path(environment)), argocd)
        section.check()  # every field, even those only Applications use
        rendered.append((environment, render(tree, environment, section, settings).encode()))
    return changed(*(tree.write(file_parts(env), content) for env, content in rendered))


def render(tree: SafeTree, environment: str, section: _Section, settings: ArgoCdSettings) -> str:
    """The file's text: the AppProject, then the Applications sorted by name."""
    documents = [app_project(environment, section)]
    for application in sorted(tree.list(("environments", environment, "applications"))):
        if not _deployed(tree, environment, application):
            continue
        team_file = tree.read(("applications", application, "team")) or b""
        team = team_file.decode("utf-8", "replace")
        documents.append(application_object(environment, application, team, section, settings))
    return "---\n".join(goyaml.dump(document) for document in documents)


def _deployed(tree: SafeTree, environment: str, application: str) -> bool:
    """Kuberpult renders an application only where its ``version`` symlink resolves to a
    release other than 0 (a queued version or a lone lock is not a deployment)."""
    link = ("environments", environment, "applications", application, "version")
    target = tree.read_symlink(link)
    if target is None:
        return False
    version = target.rstrip("/").rsplit("/", 1)[-1]
    if not version.isascii() or not version.isdigit() or int(version) == 0:
        return False
    return tree.is_dir(("applications", application, "releases", version))


def app_project(environment: str, section: _Section) -> dict[str, Any]:
    """The environment's AppProject."""
    destination = section.destination()
    project_destination = _without_empty(
        {
            "name": destination.get("name", ""),
            "server": destination.get("server", ""),
            "namespace": destination.get("namespace") or destination.get("appProjectNamespace"),
        }
    )
    spec: dict[str, Any] = {
        "description": environment,
        "destinations": [project_destination],
        "sourceRepos": ["*"],
    }
    windows = [
        _without_empty(
            {
                "applications": window.get("applications") or ["*"],
                "duration": window.get("duration", ""),
                "kind": window.get("kind", ""),
                "manualSync": True,
                "schedule": window.get("schedule", ""),
            }
        )
        for window in section.objects("syncWindows", _WINDOW_LISTS)
    ]
    if windows:
        spec["syncWindows"] = windows
    access = [
        {"group": item.get("group", ""), "kind": item.get("kind", "")}
        for item in section.objects("accessList", {})
    ]
    if access:
        spec["clusterResourceWhitelist"] = access
    return {
        "apiVersion": API_VERSION,
        "kind": "AppProject",
        "metadata": {"name": environment},
        "spec": spec,
    }


def application_object(
    environment: str, application: str, team: str, section: _Section, settings: ArgoCdSettings
) -> dict[str, Any]:
    """One deployed application's Argo CD Application."""
    destination = section.destination()
    manifests = f"environments/{environment}/applications/{application}/manifests"
    annotations = dict(section.strings_map("applicationAnnotations"))
    annotations.update(
        {
            TEAM_KEY: team,
            "com.freiheit.kuberpult/application": application,
            "com.freiheit.kuberpult/environment": environment,
            "argocd.argoproj.io/manifest-generate-paths": f"/{manifests}",
        }
    )
    sync_policy: dict[str, Any] = {
        "automated": {"allowEmpty": True, "prune": True, "selfHeal": True}
    }
    sync_options = section.strings("syncOptions")
    if sync_options:
        sync_policy["syncOptions"] = sync_options
    spec: dict[str, Any] = {
        "destination": _without_empty(
            {
                "name": destination.get("name", ""),
                "server": destination.get("server", ""),
                "namespace": destination.get("namespace")
                or destination.get("applicationNamespace"),
            }
        ),
        "project": environment,
        "source": {
            "path": manifests,
            "repoURL": settings.repo_url,
            "targetRevision": settings.target_revision,
        },
        "syncPolicy": sync_policy,
    }
    ignore = [
        {"kind": item.get("kind", ""), **_without_empty({k: item.get(k) for k in _IGNORE_FIELDS})}
        for item in section.objects("ignoreDifferences", _IGNORE_LISTS)
    ]
    if ignore:
        spec["ignoreDifferences"] = ignore
    return {
        "apiVersion": API_VERSION,
        "kind": "Application",
        "metadata": {
            "annotations": annotations,
            "finalizers": [FINALIZER],
            "labels": {TEAM_KEY: team},
            "name": f"{environment}-{application}",
        },
        "spec": spec,
    }


def _without_empty(fields: dict[str, Any]) -> dict[str, Any]:
    """Go's ``omitempty``: empty strings, lists and missing values are left out."""
    return {k: v for k, v in fields.items() if v not in (None, "", [], {})}


class _Section:
    """An ``argocd`` section, checked field by field as it is read (Go's JSON decoder would
    refuse a wrong type; unknown keys are ignored, as Go does)."""

    def __init__(self, path: str, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    def _wrong(self, field: str, expected: str, value: Any) -> InvalidRepositoryFile:
        shown = json.dumps(value, default=str)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return InvalidRepositoryFile(f"{self.path}: argocd.{field} must be {expected}, got {shown}")

    def check(self) -> None:
        self.destination()
        self.objects("syncWindows", _WINDOW_LISTS)
        self.objects("accessList", {})
        self.objects("ignoreDifferences", _IGNORE_LISTS)
        self.strings("syncOptions")
        self.strings_map("applicationAnnotations")

    def destination(self) -> dict[str, str]:
        return self._strings_object("destination", self.data.get("destination"))

    def _strings_object(
        self, field: str, value: Any, lists: dict[str, type] | None = None
    ) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._wrong(field, "an object", value)
        for key, item in value.items():
            if item is None:
                continue
            if lists and key in lists:
                if not isinstance(item, list) or not all(isinstance(s, str) for s in item):
                    raise self._wrong(f"{field}.{key}", "a list of strings", item)
            elif not isinstance(item, str):
                if lists is not None and key not in _KNOWN_STRING_FIELDS:
                    continue  # an unknown key: ignored, as Go's decoder does
                raise self._wrong(f"{field}.{key}", "a string", item)
        return {k: v for k, v in value.items() if v is not None}

    def objects(self, field: str, lists: dict[str, type]) -> list[dict[str, Any]]:
        value = self.data.get(field)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._wrong(field, "a list of objects", value)
        return [self._strings_object(f"{field}[{i}]", item, lists) for i, item in enumerate(value)]

    def strings(self, field: str) -> list[str]:
        value = self.data.get(field)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise self._wrong(field, "a list of strings", value)
        return list(value)

    def strings_map(self, field: str) -> dict[str, str]:
        value = self.data.get(field)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self._wrong(field, "an object of strings", value)
        return dict(value)


#: The string fields of the objects in lists; anything else of another type is ignored.
_KNOWN_STRING_FIELDS = {"schedule", "duration", "kind", "group", "name", "namespace"}
_IGNORE_FIELDS = (
    "group",
    "name",
    "namespace",
    "jsonPointers",
    "jqPathExpressions",
    "managedFieldsManagers",
)
_WINDOW_LISTS: dict[str, type] = {"applications": list}
_IGNORE_LISTS: dict[str, type] = {
    "jsonPointers": list,
    "jqPathExpressions": list,
    "managedFieldsManagers": list,
}
