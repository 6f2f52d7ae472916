"""Argo CD files: ``argocd/v1alpha1/<env>.yaml`` byte for byte as Kuberpult v12 renders them,
and every document shaped as Argo CD's CRDs require."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.repo import argocd
from server.repo.argocd import ArgoCdSettings
from server.repo.environments import InvalidRepositoryFile
from server.repo.safe_tree import SafeTree
from tests.argocd_crds import check_document

SETTINGS = ArgoCdSettings("git@github.com:example-org/manifests.git", "main")

STAGING_CONFIG = {
    "upstream": {"environment": "development"},
    "argocd": {
        "destination": {"server": "https://kubernetes.default.svc", "namespace": "*"},
        "applicationAnnotations": {
            "notifications.argoproj.io/subscribe.on-sync-failed.teams": "",
            "notifications.argoproj.io/subscribe.on-degraded.teams": "",
        },
        "accessList": [
            {"group": "*", "kind": "ClusterSecretStore"},
            {"group": "*", "kind": "ClusterIssuer"},
        ],
        "ignoreDifferences": [
            {"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}
        ],
    },
}

# Kuberpult's reference example (shared/reference, §1.6): staging, echo of sre-team.
STAGING_GOLDEN = """\
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata:
  name: staging
spec:
  clusterResourceWhitelist:
  - group: '*'
    kind: ClusterSecretStore
  - group: '*'
    kind: ClusterIssuer
  description: staging
  destinations:
  - namespace: '*'
    server: https://kubernetes.default.svc
  sourceRepos:
  - '*'
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  annotations:
    argocd.argoproj.io/manifest-generate-paths: /environments/staging/applications/echo/manifests
    com.freiheit.kuberpult/application: echo
    com.freiheit.kuberpult/environment: staging
    com.freiheit.kuberpult/team: sre-team
    notifications.argoproj.io/subscribe.on-degraded.teams: ""
    notifications.argoproj.io/subscribe.on-sync-failed.teams: ""
  finalizers:
  - resources-finalizer.argocd.argoproj.io
  labels:
    com.freiheit.kuberpult/team: sre-team
  name: staging-echo
spec:
  destination:
    namespace: '*'
    server: https://kubernetes.default.svc
  ignoreDifferences:
  - group: apps
    jsonPointers:
    - /spec/replicas
    kind: Deployment
  project: staging
  source:
    path: environments/staging/applications/echo/manifests
    repoURL: git@github.com:example-org/manifests.git
    targetRevision: main
  syncPolicy:
    automated:
      allowEmpty: true
      prune: true
      selfHeal: true
"""

EMPTY_PROJECT_GOLDEN = """\
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata:
  name: production
spec:
  description: production
  destinations:
  - {}
  sourceRepos:
  - '*'
"""

SYNC_WINDOW_GOLDEN = """\
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata:
  name: production
spec:
  description: production
  destinations:
  - {}
  sourceRepos:
  - '*'
  syncWindows:
  - applications:
    - '*'
    duration: 1h
    kind: allow
    manualSync: true
    schedule: 10 1 * * *
"""

EMPTY_DESTINATION_APPLICATION = """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  annotations:
    argocd.argoproj.io/manifest-generate-paths: /environments/production/applications/echo/manifests
    com.freiheit.kuberpult/application: echo
    com.freiheit.kuberpult/environment: production
    com.freiheit.kuberpult/team: ""
  finalizers:
  - resources-finalizer.argocd.argoproj.io
  labels:
    com.freiheit.kuberpult/team: ""
  name: production-echo
spec:
  destination: {}
  project: production
  source:
    path: environments/production/applications/echo/manifests
    repoURL: git@github.com:example-org/manifests.git
    targetRevision: main
  syncPolicy:
    automated:
      allowEmpty: true
      prune: true
      selfHeal: true
"""


def environment(tree: SafeTree, name: str, config: dict[str, Any]) -> None:
    tree.write(("environments", name, "config.json"), json.dumps(config).encode())


def deploy(tree: SafeTree, env: str, app: str, version: int, team: str | None = None) -> None:
    release = ("applications", app, "releases", str(version))
    tree.write((*release, "environments", env, "manifests.yaml"), b"kind: ConfigMap\n")
    if team is not None:
        tree.write(("applications", app, "team"), team.encode())
    tree.symlink(("environments", env, "applications", app, "version"), release)


@pytest.fixture
def tree(tmp_path: Path) -> SafeTree:
    return SafeTree(tmp_path)


def rendered(tree: SafeTree, env: str) -> str:
    content = tree.read(argocd.file_parts(env))
    assert content is not None, f"no Argo CD file for {env}"
    return content.decode()


def test_the_reference_example_matches_byte_for_byte(tree: SafeTree) -> None:
    environment(tree, "staging", STAGING_CONFIG)
    deploy(tree, "staging", "echo", 7, team="sre-team")
    assert argocd.update_files(tree, SETTINGS) == ["argocd/v1alpha1/staging.yaml"]
    assert rendered(tree, "staging") == STAGING_GOLDEN


def test_an_empty_argocd_object_without_deployments_is_the_project_alone(tree: SafeTree) -> None:
    environment(tree, "production", {"argocd": {}})
    # A release that is not deployed here, a queued version and a lone lock render nothing.
    release = ("applications", "echo", "releases", "3")
    tree.write((*release, "environments", "production", "manifests.yaml"), b"x")
    tree.symlink(("environments", "production", "applications", "echo", "queued_version"), release)
    tree.write(
        ("environments", "production", "applications", "other", "locks", "l", "message"), b""
    )
    argocd.update_files(tree, SETTINGS)
    assert rendered(tree, "production") == EMPTY_PROJECT_GOLDEN


def test_a_sync_window_without_applications_applies_to_all(tree: SafeTree) -> None:
    window = {"schedule": "10 1 * * *", "duration": "1h", "kind": "allow", "applications": []}
    environment(tree, "production", {"argocd": {"syncWindows": [window]}})
    argocd.update_files(tree, SETTINGS)
    assert rendered(tree, "production") == SYNC_WINDOW_GOLDEN


def test_an_application_without_destination_fields_gets_an_empty_destination(
    tree: SafeTree,
) -> None:
    environment(tree, "production", {"argocd": {"destination": {"name": "", "server": ""}}})
    deploy(tree, "production", "echo", 1)
    argocd.update_files(tree, SETTINGS)
    documents = rendered(tree, "production").split("---\n")
    assert documents == [EMPTY_PROJECT_GOLDEN, EMPTY_DESTINATION_APPLICATION]


def test_applications_are_sorted_and_only_deployed_ones_appear(tree: SafeTree) -> None:
    environment(tree, "dev", {"upstream": {"latest": True}, "argocd": {}})
    for app in ("zeta", "alpha", "mid"):
        deploy(tree, "dev", app, 1, team="payments")
    # A version link whose release was cleaned up is not a deployment.
    tree.symlink(
        ("environments", "dev", "applications", "ghost", "version"),
        ("applications", "ghost", "releases", "9"),
    )
    argocd.update_files(tree, SETTINGS)
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(rendered(tree, "dev"))]
    assert names == ["dev", "dev-alpha", "dev-mid", "dev-zeta"]


def test_namespaces_split_between_project_and_applications(tree: SafeTree) -> None:
    destination = {
        "name": "prod-cluster",
        "appProjectNamespace": "argocd-projects",
        "applicationNamespace": "apps",
    }
    environment(tree, "prod", {"argocd": {"destination": destination}})
    deploy(tree, "prod", "echo", 2, team="t")
    argocd.update_files(tree, SETTINGS)
    project, application = yaml.safe_load_all(rendered(tree, "prod"))
    assert project["spec"]["destinations"] == [
        {"name": "prod-cluster", "namespace": "argocd-projects"}
    ]
    assert application["spec"]["destination"] == {"name": "prod-cluster", "namespace": "apps"}
    # "namespace" wins over both.
    environment(tree, "prod", {"argocd": {"destination": {**destination, "namespace": "all"}}})
    argocd.update_files(tree, SETTINGS)
    project, application = yaml.safe_load_all(rendered(tree, "prod"))
    assert project["spec"]["destinations"][0]["namespace"] == "all"
    assert application["spec"]["destination"]["namespace"] == "all"


def test_fixed_annotations_win_over_configured_ones(tree: SafeTree) -> None:
    annotations = {"com.freiheit.kuberpult/team": "forged", "example.com/x": "1"}
    environment(tree, "dev", {"argocd": {"applicationAnnotations": annotations}})
    deploy(tree, "dev", "echo", 1, team="real")
    argocd.update_files(tree, SETTINGS)
    application = list(yaml.safe_load_all(rendered(tree, "dev")))[1]
    assert application["metadata"]["annotations"]["com.freiheit.kuberpult/team"] == "real"
    assert application["metadata"]["annotations"]["example.com/x"] == "1"
    assert '"1"' in rendered(tree, "dev")  # a number-like string stays a string


def test_unchanged_files_are_not_rewritten_and_disabled_writes_nothing(tree: SafeTree) -> None:
    environment(tree, "dev", {"argocd": {}})
    assert argocd.update_files(tree, SETTINGS) == ["argocd/v1alpha1/dev.yaml"]
    assert argocd.update_files(tree, SETTINGS) == []
    environment(tree, "other", {"argocd": {}})
    assert argocd.update_files(tree, ArgoCdSettings("x", "main", enabled=False)) == []
    assert tree.read(argocd.file_parts("other")) is None


def test_environments_without_an_argocd_section_get_no_file_and_keep_an_old_one(
    tree: SafeTree,
) -> None:
    environment(tree, "dev", {"argocd": {}})
    environment(tree, "plain", {"upstream": {"latest": True}})
    argocd.update_files(tree, SETTINGS)
    assert tree.read(argocd.file_parts("plain")) is None
    environment(tree, "dev", {})
    assert argocd.update_files(tree, SETTINGS) == []
    assert tree.read(argocd.file_parts("dev")) is not None


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"destination": "cluster"}, "argocd.destination must be an object"),
        ({"destination": {"server": 1}}, "argocd.destination.server must be a string"),
        ({"syncWindows": {"kind": "allow"}}, "argocd.syncWindows must be a list of objects"),
        ({"syncWindows": [{"applications": "a"}]}, "argocd.syncWindows[0].applications"),
        ({"accessList": [{"kind": 3}]}, "argocd.accessList[0].kind must be a string"),
        (
            {"applicationAnnotations": {"a": 1}},
            "argocd.applicationAnnotations must be an object of strings",
        ),
        ({"syncOptions": "Prune=false"}, "argocd.syncOptions must be a list of strings"),
        ({"ignoreDifferences": [{"jsonPointers": "/x"}]}, "ignoreDifferences[0].jsonPointers"),
        ({"destination": {"k.5": 1, "k": []}}, "argocd.destination.k.5 must be a string"),
    ],
)
def test_a_section_of_the_wrong_shape_is_refused_naming_the_field(
    tree: SafeTree, section: dict[str, Any], field: str
) -> None:
    environment(tree, "dev", {"argocd": section})
    with pytest.raises(InvalidRepositoryFile, match=field.replace("[", r"\[")) as refusal:
        argocd.update_files(tree, SETTINGS)
    assert "environments/dev/config.json" in str(refusal.value)
    assert tree.read(argocd.file_parts("dev")) is None


def test_every_shape_reads_back_as_what_was_meant_and_fits_the_crds(tree: SafeTree) -> None:
    odd = {
        "destination": {"server": "https://k8s.example.com:6443", "namespace": "team-a"},
        "syncWindows": [
            {"schedule": "0 22 * * *", "duration": "8h", "kind": "deny", "applications": ["a*"]}
        ],
        "accessList": [{"group": "", "kind": "Namespace"}],
        "applicationAnnotations": {
            "example.com/yes": "yes",
            "example.com/date": "2024-01-02",
            "example.com/colon": "a: b",
            "example.com/hash": "x #y",
            "example.com/long": "word " * 30 + "end",
            "example.com/lines": "first\nsecond\n",
            "example.com/quote": "it's",
            "example.com/10": "ten",
            "example.com/9": "nine",
        },
        "ignoreDifferences": [
            {"kind": "Secret", "jqPathExpressions": [".data.x"], "managedFieldsManagers": ["m"]}
        ],
        "syncOptions": ["CreateNamespace=true", "ServerSideApply=true"],
    }
    environment(tree, "edge", {"argocd": odd})
    deploy(tree, "edge", "svc-1", 4, team="team-a")
    argocd.update_files(tree, SETTINGS)
    text = rendered(tree, "edge")
    project, application = yaml.safe_load_all(text)
    assert application["metadata"]["annotations"]["example.com/lines"] == "first\nsecond\n"
    assert application["metadata"]["annotations"]["example.com/long"] == "word " * 30 + "end"
    assert application["metadata"]["annotations"]["example.com/yes"] == "yes"
    assert application["metadata"]["annotations"]["example.com/date"] == "2024-01-02"
    assert application["spec"]["ignoreDifferences"] == [
        {"kind": "Secret", "jqPathExpressions": [".data.x"], "managedFieldsManagers": ["m"]}
    ]
    assert project["spec"]["syncWindows"][0]["applications"] == ["a*"]
    # go-yaml's key order: digit runs compare as numbers.
    assert text.index("example.com/9:") < text.index("example.com/10:")
    check_document(project)
    check_document(application)


@pytest.mark.parametrize("section", [[], False, 0, "", "x", [{"a": 1}]])
def test_an_argocd_section_that_is_not_an_object_is_refused_however_falsy(
    tree: SafeTree, section: object
) -> None:
    tree.write(("environments", "qa", "config.json"), json.dumps({"argocd": section}).encode())
    with pytest.raises(InvalidRepositoryFile, match="environments/qa/config.json"):
        argocd.update_files(tree, SETTINGS)


@pytest.mark.parametrize(
    "config",
    [{"upstream": []}, {"upstream": 0}, {"environmentGroup": 0}, {"environmentGroup": []}],
)
def test_other_fields_of_the_wrong_type_are_refused_however_falsy(
    tree: SafeTree, config: dict[str, Any]
) -> None:
    environment(tree, "qa", config)
    with pytest.raises(InvalidRepositoryFile, match="wrong type"):
        argocd.update_files(tree, SETTINGS)


def test_a_config_nested_too_deeply_is_refused_not_a_crash(tree: SafeTree) -> None:
    deep = '{"argocd": {"syncOptions": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    tree.write(("environments", "qa", "config.json"), deep.encode())
    with pytest.raises(InvalidRepositoryFile, match="nests too deeply"):
        argocd.update_files(tree, SETTINGS)


def test_an_environment_name_too_long_for_its_file_is_refused_naming_it(tree: SafeTree) -> None:
    environment(tree, "e" * 252, {"argocd": {}})
    with pytest.raises(InvalidRepositoryFile, match="too long"):
        argocd.update_files(tree, SETTINGS)


@pytest.mark.parametrize(
    "value",
    [
        "x\ty",
        "\tlead",
        "trail\t",
        "a\u2028b",
        "a\u2029b",
        "next\x85line",
        "cr\rlf",
        "emoji \U0001f680",
        "bell\x07",
        "nbsp\xa0here",
        "bom\ufeff",
    ],
)
def test_strings_a_yaml_reader_would_misread_are_escaped(tree: SafeTree, value: str) -> None:
    environment(tree, "dev", {"argocd": {"applicationAnnotations": {"example.com/v": value}}})
    deploy(tree, "dev", "echo", 1, team="t")
    argocd.update_files(tree, SETTINGS)
    application = list(yaml.safe_load_all(rendered(tree, "dev")))[1]
    assert application["metadata"]["annotations"]["example.com/v"] == value
