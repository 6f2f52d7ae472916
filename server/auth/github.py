"""Which GitHub Actions workflows may release what: a policy over the OIDC token's claims.

A JSON file (``KUBERPULT_GITHUB_OIDC_POLICY_PATH``)::

    {"rules": [{"repository": "acme/payments", "ref": "refs/heads/main",
                "environment": "production",
                "applications": ["payments-api"], "environments": ["development", "staging"]}]}

``ref`` and ``environment`` are optional (absent: any); ``"*"`` in a list means any. A release
is allowed when one rule matches the token and names its application and all its
environments. Anything else is refused (default deny).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from server.auth.rbac import PolicyError
from server.errors import Forbidden


@dataclass(frozen=True)
class Rule:
    """One allowed (repository, ref, environment) → (applications, environments)."""

    repository: str
    applications: frozenset[str]
    environments: frozenset[str]
    ref: str | None = None
    environment: str | None = None

    def matches(self, claims: dict[str, Any]) -> bool:
        """Whether the token's claims are this rule's workflow."""
        return (
            claims.get("repository") == self.repository
            and (self.ref is None or claims.get("ref") == self.ref)
            and (self.environment is None or claims.get("environment") == self.environment)
        )


@dataclass(frozen=True)
class GitHubPolicy:
    """The parsed policy file."""

    rules: tuple[Rule, ...]

    def check_release(
        self, claims: dict[str, Any], application: str, environments: list[str]
    ) -> None:
        """Raise ``Forbidden`` unless a rule allows this release."""
        for rule in self.rules:
            if not rule.matches(claims):
                continue
            app_ok = application in rule.applications or "*" in rule.applications
            envs_ok = "*" in rule.environments or set(environments) <= rule.environments
            if app_ok and envs_ok:
                return
        raise Forbidden(
            f"PermissionDenied GitHub repository {claims.get('repository')!r} "
            f"(ref {claims.get('ref')!r}, environment {claims.get('environment')!r}) may not "
            f"release application {application!r} to {', '.join(sorted(environments))}"
        )


def parse_github_policy(text: str, source: str) -> GitHubPolicy:
    """Parse the policy file. :raises PolicyError: naming ``source`` and what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise PolicyError(f"{source} is not valid JSON: {error}") from None
    raw_rules = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(raw_rules, list):
        raise PolicyError(f'{source} must be an object with a "rules" list')
    rules = []
    for index, raw in enumerate(raw_rules):
        where = f"{source} rule {index + 1}"
        if not isinstance(raw, dict) or not isinstance(raw.get("repository"), str):
            raise PolicyError(f'{where}: needs "repository": "owner/name"')
        lists = {}
        for key in ("applications", "environments"):
            value = raw.get(key)
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, str) for v in value)
            ):
                raise PolicyError(f'{where}: "{key}" must be a non-empty list of names')
            lists[key] = frozenset(value)
        for key in ("ref", "environment"):
            if raw.get(key) is not None and not isinstance(raw[key], str):
                raise PolicyError(f'{where}: "{key}" must be a string')
        unknown = set(raw) - {"repository", "ref", "environment", "applications", "environments"}
        if unknown:
            raise PolicyError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        rules.append(
            Rule(
                raw["repository"],
                lists["applications"],
                lists["environments"],
                raw.get("ref"),
                raw.get("environment"),
            )
        )
    return GitHubPolicy(tuple(rules))
