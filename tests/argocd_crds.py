"""The fields and types of Argo CD's Application and AppProject CRDs that our files use.

Written from the openAPIV3Schema of ``manifests/crds/application-crd.yaml`` and
``appproject-crd.yaml`` in ``argoproj/argo-cd`` (read, not copied): an unknown field would be
pruned by the API server (a setting silently lost), a wrong type refused.
"""

from __future__ import annotations

from typing import Any

STRING, BOOLEAN = "string", "boolean"
STRINGS = ["string"]
STRING_MAP = {"*": "string"}


def obj(required: tuple[str, ...] = (), **fields: Any) -> dict[str, Any]:
    return {"required": required, "fields": fields}


METADATA = obj(
    name=STRING,
    annotations=STRING_MAP,
    labels=STRING_MAP,
    finalizers=STRINGS,
)

APPLICATION = obj(
    ("apiVersion", "kind", "metadata", "spec"),
    apiVersion=STRING,
    kind=STRING,
    metadata=METADATA,
    spec=obj(
        ("destination", "project"),
        destination=obj(name=STRING, namespace=STRING, server=STRING),
        project=STRING,
        source=obj(("repoURL",), path=STRING, repoURL=STRING, targetRevision=STRING),
        syncPolicy=obj(
            automated=obj(allowEmpty=BOOLEAN, prune=BOOLEAN, selfHeal=BOOLEAN),
            syncOptions=STRINGS,
        ),
        ignoreDifferences=[
            obj(
                ("kind",),
                group=STRING,
                kind=STRING,
                name=STRING,
                namespace=STRING,
                jsonPointers=STRINGS,
                jqPathExpressions=STRINGS,
                managedFieldsManagers=STRINGS,
            )
        ],
    ),
)

APP_PROJECT = obj(
    ("apiVersion", "kind", "metadata", "spec"),
    apiVersion=STRING,
    kind=STRING,
    metadata=METADATA,
    spec=obj(
        description=STRING,
        destinations=[obj(name=STRING, namespace=STRING, server=STRING)],
        sourceRepos=STRINGS,
        clusterResourceWhitelist=[obj(("group", "kind"), group=STRING, kind=STRING)],
        syncWindows=[
            obj(
                applications=STRINGS,
                clusters=STRINGS,
                namespaces=STRINGS,
                duration=STRING,
                kind=STRING,
                manualSync=BOOLEAN,
                schedule=STRING,
                timeZone=STRING,
            )
        ],
    ),
)


def check_document(document: dict[str, Any]) -> None:
    """Raise AssertionError naming the first field the CRD would refuse or prune."""
    schema = {"Application": APPLICATION, "AppProject": APP_PROJECT}[document["kind"]]
    assert document["apiVersion"] == "argoproj.io/v1alpha1"
    _check(document, schema, document["kind"])


def _check(value: Any, schema: Any, where: str) -> None:
    if schema == STRING:
        assert isinstance(value, str), f"{where} must be a string, is {value!r}"
    elif schema == BOOLEAN:
        assert isinstance(value, bool), f"{where} must be a boolean, is {value!r}"
    elif isinstance(schema, list):
        assert isinstance(value, list), f"{where} must be a list, is {value!r}"
        for index, item in enumerate(value):
            _check(item, schema[0], f"{where}[{index}]")
    elif "*" in schema:
        assert isinstance(value, dict), f"{where} must be a map, is {value!r}"
        for key, item in value.items():
            assert isinstance(key, str), f"{where} has a key that is not a string: {key!r}"
            _check(item, schema["*"], f"{where}.{key}")
    else:
        assert isinstance(value, dict), f"{where} must be an object, is {value!r}"
        for name in schema["required"]:
            assert name in value, f"{where}.{name} is required"
        for key, item in value.items():
            assert key in schema["fields"], f"{where}.{key} is not a field of the CRD"
            _check(item, schema["fields"][key], f"{where}.{key}")
