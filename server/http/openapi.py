"""The OpenAPI 3.1 description of the HTTP API, written by hand and served at
``/api/openapi.json``. A test runs schemathesis against the live server with it.

Over 250 lines because it is mostly the document itself, as data.
"""

from __future__ import annotations

from typing import Any

from server import rules

# JSON Schema patterns are ECMA regexes: anchored with ^ and $, not \A and \z.
NAME = {"type": "string", "maxLength": 63, "pattern": f"^{rules.NAME.pattern}$"}
LOCK_ID = {"type": "string", "pattern": f"^{rules.LOCK_ID.pattern}$"}

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
                "release": {"type": "object"},
            },
        },
        "TooLong": {"type": "object"},
        "TooOld": {"type": "object"},
        "AlreadyExistsDifferent": {
            "type": "object",
            "required": ["first_differing_field", "diff"],
            "properties": {
                "first_differing_field": {"type": "integer"},
                "diff": {"type": "string"},
            },
        },
    },
}

_REASONS = {
    "400": "A field or parameter breaks a rule; nothing was changed",
    "401": "No acceptable credentials",
    "403": "Not allowed by the RBAC or GitHub policy; nothing was changed",
    "404": "Not found",
    "405": "Method not allowed",
    "409": "Conflicts with what exists (other content, or an unsafe or invalid repository)",
    "413": "The body is larger than 12 MiB",
    "502": "The manifest repository refused the push; the release is stored",
    "503": "Try again later (Retry-After): push pending, queue full, database busy",
}


def _errors(*codes: str) -> dict[str, Any]:
    return {
        code: {"description": _REASONS[code], "content": {"application/json": {"schema": ERROR}}}
        for code in codes
    }


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _path(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


RELEASE_FORM = {
    "type": "object",
    "required": ["application"],
    "properties": {
        "application": {"type": "string", "description": "Application name"},
        "version": {"type": "string", "description": "Decimal, 1 to 2^63-1"},
        "source_commit_id": {"type": "string", "description": "40 hex characters"},
        "previous_commit_id": {"type": "string", "description": "40 hex characters"},
        "source_author": {"type": "string"},
        "source_message": {"type": "string"},
        "display_version": {"type": "string"},
        "team": {"type": "string"},
        "ci_link": {"type": "string"},
        "manifests[development]": {"type": "string", "format": "binary"},
        "signatures[development]": {"type": "string", "format": "binary"},
    },
    "additionalProperties": {
        "type": "string",
        "format": "binary",
        "description": "manifests[<env>] and signatures[<env>] parts",
    },
}

RELEASE_OPERATION = {
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": RELEASE_FORM}}},
    "parameters": [
        {
            "name": "author-name",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "base64 of the git author's name",
        },
        {
            "name": "author-email",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "base64 of the git author's email",
        },
    ],
    "responses": {
        "201": _json(
            "Created; the commit is on the remote", {"type": "object", "required": ["Success"]}
        ),
        "200": _json(
            "The same release exists already; nothing written",
            {"type": "object", "required": ["AlreadyExistsSame"]},
        ),
        **_errors("400", "401", "403", "409", "413", "502", "503"),
    },
}

RELEASE = {
    "type": "object",
    "required": ["application", "version", "environments", "created_at", "state"],
    "properties": {
        "application": {"type": "string"},
        "version": {"type": "integer"},
        "environments": {"type": "array", "items": {"type": "string"}},
        "created_at": {"type": "string"},
        "state": {"enum": ["pending", "pushed", "failed"]},
        "commit_sha": {"type": ["string", "null"]},
        "pushed_at": {"type": ["string", "null"]},
        "error": {"type": ["string", "null"]},
        "removed_from_repo_at": {"type": ["string", "null"]},
        "author": {"type": "object"},
    },
}

LOCK_BODY = {
    "type": "object",
    "properties": {
        "message": {"type": "string"},
        "ciLink": {"type": "string"},
        "suggestedLifeTime": {"type": "string", "pattern": "^[1-9][0-9]*[hdw]$"},
    },
    "additionalProperties": False,
}


def _lock_operations(parameters: list[dict[str, Any]], what: str) -> dict[str, Any]:
    common = _errors("400", "401", "403", "404", "409", "503")
    return {
        "parameters": parameters,
        "put": {
            "summary": f"Create {what}",
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": LOCK_BODY}},
            },
            "responses": {
                "201": _json("Created and pushed", {"type": "object"}),
                "200": _json("The same lock exists already", {"type": "object"}),
                **common,
            },
        },
        "delete": {
            "summary": f"Delete {what}",
            "responses": {
                "200": _json("Deleted (or there was none)", {"type": "object"}),
                **common,
            },
        },
    }


TRAIN_BODY = {
    "type": "object",
    "properties": {"ciLink": {"type": "string"}},
    "additionalProperties": False,
}
TRAIN_RESULT = {
    "type": "object",
    "required": ["target", "commit_sha", "deployed", "skipped"],
    "properties": {
        "target": {"type": "string"},
        "team": {"type": "string"},
        "commit_sha": {"type": ["string", "null"]},
        "deployed": {"type": "array", "items": {"type": "object"}},
        "skipped": {"type": "array", "items": {"type": "object"}},
    },
}


def _train_operation(parameters: list[dict[str, Any]], what: str) -> dict[str, Any]:
    return {
        "parameters": parameters,
        "put": {
            "summary": f"Release train into {what}: deploy what the upstream runs",
            "parameters": [{"name": "team", "in": "query", "schema": NAME}],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": TRAIN_BODY}},
            },
            "responses": {
                "200": _json("Done (one commit), or nothing to move", TRAIN_RESULT),
                **_errors("400", "401", "403", "404", "409", "503"),
            },
        },
    }


ENV = _path("environment", NAME, "Environment name")
APP = _path("application", NAME, "Application name")
LOCK = _path("lockId", LOCK_ID, "Lock id")

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "kuberpult-lite",
        "version": "0.1.0",
        "description": "A Kuberpult-compatible release server.",
    },
    "paths": {
        "/release": {
            "post": {
                "summary": "Create a release (legacy; signatures with a keyring)",
                **RELEASE_OPERATION,
            },
            "put": {"summary": "Create a release (legacy)", **RELEASE_OPERATION},
        },
        "/api/release": {
            "post": {"summary": "Create a release", **RELEASE_OPERATION},
            "put": {"summary": "Create a release", **RELEASE_OPERATION},
        },
        "/api/applications": {
            "get": {
                "summary": "Every application with its team and newest version",
                "responses": {
                    "200": _json(
                        "Applications",
                        {
                            "type": "object",
                            "required": ["applications"],
                            "properties": {
                                "applications": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["name"],
                                        "properties": {
                                            "name": {"type": "string"},
                                            "team": {"type": ["string", "null"]},
                                            "latest_version": {"type": ["integer", "null"]},
                                        },
                                    },
                                }
                            },
                        },
                    ),
                    **_errors("401"),
                },
            }
        },
        "/api/applications/{application}/releases": {
            "get": {
                "summary": "An application's releases, newest first",
                "parameters": [
                    {
                        "name": "application",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                    {
                        "name": "per_page",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1},
                    },
                ],
                "responses": {
                    "200": _json(
                        "A page of releases",
                        {
                            "type": "object",
                            "required": ["releases", "page", "per_page", "total"],
                            "properties": {
                                "releases": {"type": "array", "items": RELEASE},
                                "page": {"type": "integer"},
                                "per_page": {"type": "integer"},
                                "total": {"type": "integer"},
                            },
                        },
                    ),
                    **_errors("400", "401", "404"),
                },
            }
        },
        "/api/applications/{application}/releases/{version}": {
            "get": {
                "summary": "One release: metadata, environments, where it landed",
                "parameters": [
                    {
                        "name": "application",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "version",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],
                "responses": {"200": _json("The release", RELEASE), **_errors("401", "404")},
            }
        },
        "/api/application/{application}/release/manifests/latest": {
            "post": {
                "summary": "The manifests of the newest release (for the client's dry run)",
                "parameters": [
                    {
                        "name": "application",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _json(
                        "Manifests by environment",
                        {
                            "type": "object",
                            "required": ["manifests"],
                            "properties": {"manifests": {"type": "object"}},
                        },
                    ),
                    **_errors("401", "404"),
                },
            }
        },
        "/api/environments": {
            "get": {
                "summary": "Environments: config, deployed and queued versions, locks",
                "responses": {
                    "200": _json(
                        "Environments",
                        {
                            "type": "object",
                            "required": ["environments"],
                            "properties": {
                                "environments": {"type": "object"},
                                "as_of": {"type": ["string", "null"]},
                            },
                        },
                    ),
                    **_errors("401"),
                },
            }
        },
        "/environments/{environment}/locks/{lockId}": _lock_operations(
            [ENV, LOCK], "an environment lock"
        ),
        "/environments/{environment}/applications/{application}/locks/{lockId}": _lock_operations(
            [ENV, APP, LOCK], "an application lock"
        ),
        "/api/environments/{environment}/lock/team/{team}/{lockId}": _lock_operations(
            [ENV, _path("team", NAME, "Team name"), LOCK], "a team lock"
        ),
        "/environment-groups/{group}/locks/{lockId}": _lock_operations(
            [_path("group", NAME, "Environment group"), LOCK],
            "the same environment lock on every member of a group",
        ),
        "/api/environments/{environment}/releasetrain": _train_operation([ENV], "an environment"),
        "/api/environment-groups/{group}/releasetrain": _train_operation(
            [_path("group", NAME, "Environment group")], "every environment of a group"
        ),
        "/api/environments/{environment}/applications/{application}/deployment": {
            "parameters": [ENV, APP],
            "put": {
                "summary": "Deploy one version that is in the repository",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["version"],
                                "properties": {
                                    "version": {"type": "integer", "minimum": 1},
                                    "lockBehavior": {"enum": ["record", "fail", "ignore"]},
                                },
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        "Deployed (or queued behind a lock with record)",
                        {
                            "type": "object",
                            "required": ["version", "queued", "commit_sha"],
                            "properties": {
                                "version": {"type": "integer"},
                                "queued": {"type": "boolean"},
                                "commit_sha": {"type": ["string", "null"]},
                            },
                        },
                    ),
                    **_errors("400", "401", "403", "404", "409", "503"),
                },
            },
        },
        "/api/environments/{environment}": {
            "parameters": [ENV],
            "delete": {
                "summary": "Delete an environment nothing runs in, locks or follows",
                "responses": {
                    "200": _json("Deleted (or there was none)", {"type": "object"}),
                    **_errors("400", "401", "403", "404", "409", "503"),
                },
            },
        },
        "/api/commit-deployments/{commit}": {
            "parameters": [
                {
                    "name": "commit",
                    "in": "path",
                    "required": True,
                    "description": "A source commit (40 hex digits)",
                    "schema": {"type": "string"},
                }
            ],
            "get": {
                "summary": "Per application and environment: DEPLOYED, PENDING or UNKNOWN",
                "responses": {
                    "200": _json(
                        "Where the releases of this commit run",
                        {
                            "type": "object",
                            "required": ["deploymentStatus"],
                            "properties": {"deploymentStatus": {"type": "object"}},
                        },
                    ),
                    **_errors("400", "401", "404"),
                },
            },
        },
        "/api/environments/{environment}/applications/{application}/commit": {
            "parameters": [ENV, APP],
            "get": {
                "summary": "The source commit of the release an environment runs",
                "responses": {
                    "200": _json(
                        "author, commit_id, commit_message ({} when nothing is deployed)",
                        {"type": "object"},
                    ),
                    **_errors("400", "401", "403"),
                },
            },
        },
        "/": {
            "get": {
                "summary": "The overview page (HTML)",
                "parameters": [{"name": "team", "in": "query", "schema": {"type": "string"}}],
                "responses": {
                    "200": {
                        "description": "Applications by environment, latest releases",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    **_errors("401"),
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Alive: the database answers",
                "responses": {
                    "200": _json("Alive", {"type": "object", "required": ["status"]}),
                    **_errors("503"),
                },
            }
        },
        "/readyz": {
            "get": {
                "summary": "Ready: the remote has answered and the last push reached it",
                "responses": {
                    "200": _json("Ready", {"type": "object", "required": ["status"]}),
                    **_errors("503"),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics of every worker",
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": _json("OpenAPI 3.1", {"type": "object"})},
            }
        },
    },
}

# gunicorn itself answers a request line over 4094 bytes (a huge query string) with 414 and
# an HTML page, before the app sees it; every operation can get it.
for _operations in SPEC["paths"].values():
    for _method, _operation in _operations.items():
        if _method != "parameters":
            _operation["responses"]["414"] = {
                "description": "The request line is longer than 4094 bytes (answered by gunicorn)",
                "content": {"text/html": {"schema": {"type": "string"}}},
            }
