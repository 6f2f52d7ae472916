"""Which GitHub Actions workflows may release what: a policy over the OIDC token's claims.

A JSON file (``KUBERPULT_GITHUB_OIDC_POLICY_PATH``)::

    {"rules": [{"repository": "acme/payments", "repository_id": "123456",
                "repository_owner_id": "7890", "ref": "refs/heads/main",
                "environment": "production",
                "applications": ["payments-api"], "environments": ["development", "staging"],
                "promote": ["staging"]}]}

``ref``, ``environment``, ``repository_id`` and ``repository_owner_id`` are optional (absent:
any); the ids are recommended, because a deleted repository's or owner's *name* can be
registered again by someone else, the ids cannot. ``"*"`` in a list means any.

A token authenticates only when a rule matches it (any GitHub user can mint a token for this
audience from their own repository); it may read the applications its matching rules name,
and release one when a matching rule names it and all its environments (default deny). A
rule's ``promote`` list names the environments its workflow may run release trains into and
deploy to (its applications only); it is empty unless given.
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
    repository_id: str | None = None
    repository_owner_id: str | None = None
    #: Environments this workflow may promote to (release trains, deploys); none by default.
    promote: frozenset[str] = frozenset()

    def matches(self, claims: dict[str, Any]) -> bool:
        """Whether the token's claims are this rule's workflow."""
        pins = (
            ("ref", self.ref),
            ("environment", self.environment),
            ("repository_id", self.repository_id),
            ("repository_owner_id", self.repository_owner_id),
        )
        return claims.get("repository") == self.repository and all(
            expected is None or str(claims.get(claim)) == expected for claim, expected in pins
        )


@dataclass(frozen=True)
class GitHubPolicy:
    """The parsed policy file."""

    rules: tuple[Rule, ...]

    def matching(self, claims: dict[str, Any]) -> list[Rule]:
        """The rules that match the token; none means the token does not authenticate."""
        return [rule for rule in self.rules if rule.matches(claims)]

    def readable(self, claims: dict[str, Any]) -> frozenset[str] | None:
        """The applications the token may read; None means all (a rule names ``*``)."""
        names: set[str] = set()
        for rule in self.matching(claims):
            if "*" in rule.applications:
                return None
            names |= rule.applications
        return frozenset(names)

    def promoting_rules(self, claims: dict[str, Any], environment: str) -> list[Rule]:
        """The matching rules that let the token promote to ``environment``."""
        return [
            rule
            for rule in self.matching(claims)
            if environment in rule.promote or "*" in rule.promote
        ]

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
        promote = raw.get("promote", [])
        if not isinstance(promote, list) or not all(isinstance(v, str) for v in promote):
            raise PolicyError(f'{where}: "promote" must be a list of environment names')
        pins = ("ref", "environment", "repository_id", "repository_owner_id")
        for key in pins:
            if raw.get(key) is not None and not isinstance(raw[key], str | int):
                raise PolicyError(f'{where}: "{key}" must be a string (the ids may be numbers)')
        unknown = set(raw) - {"repository", "applications", "environments", "promote", *pins}
        if unknown:
            raise PolicyError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        ids = {k: None if raw.get(k) is None else str(raw[k]) for k in pins[2:]}
        rules.append(
            Rule(
                raw["repository"],
                lists["applications"],
                lists["environments"],
                ref=raw.get("ref"),
                environment=raw.get("environment"),
                repository_id=ids["repository_id"],
                repository_owner_id=ids["repository_owner_id"],
                promote=frozenset(promote),
            )
        )
    return GitHubPolicy(tuple(rules))
