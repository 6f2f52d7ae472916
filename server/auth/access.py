"""Who may call what: every route declares an ``Access`` family, and the configuration decides
which credentials each family accepts. Pure: no Flask, no I/O.

The same ``Requirement`` object is what the HTTP layer enforces, what the start-up line prints
and what the README's table shows (a test compares the table with ``requirement()``), so the
documentation cannot drift from the code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from server.config import Config


class Access(enum.StrEnum):
    """The endpoint families; each route declares exactly one."""

    PUBLIC = "public"  # health, readiness, metrics, the OpenAPI document
    READ = "read"  # overview page, read API, the client's dry-run manifest diff
    RELEASE = "release"  # POST /api/release
    LEGACY_RELEASE = "legacy-release"  # POST /release (Kuberpult's signed endpoint)
    LOCK = "lock"  # creating and deleting locks (environment, application, team, group)
    PROMOTE = "promote"  # release trains and deploys of a version
    ENVIRONMENT = "environment"  # deleting an environment


class Credential(enum.StrEnum):
    """What a request can present."""

    DEX = "Dex token"
    GITHUB = "GitHub Actions token"
    SIGNATURES = "signatures"


@dataclass(frozen=True)
class Requirement:
    """Any one of ``accepted`` (each a set of credentials presented together) lets a request
    in; ``open`` lets every request in; neither: the family is closed in this configuration."""

    accepted: tuple[frozenset[Credential], ...] = ()
    open: bool = False

    def met_by(self, presented: set[Credential]) -> bool:
        """Whether ``presented`` is enough."""
        return self.open or any(needed <= presented for needed in self.accepted)

    def possible_with(self, presented: set[Credential]) -> bool:
        """Whether adding signatures (not yet checked: they are in the body) could be enough."""
        return self.met_by(presented | {Credential.SIGNATURES})

    def __str__(self) -> str:
        if self.open:
            return "nothing (open)"
        if not self.accepted:
            return "closed (401)"
        return " or ".join(" + ".join(sorted(needed)) for needed in self.accepted)


OPEN = Requirement(open=True)
CLOSED = Requirement()


def requirement(access: Access, config: Config) -> Requirement:
    """What ``access`` needs under ``config``."""
    if access is Access.PUBLIC or config.open_without_auth:
        return OPEN
    keyring = config.pgp_key_ring_path is not None
    dex, github = config.dex_enabled, config.github_oidc_policy_path is not None
    tokens = [
        frozenset({credential})
        for credential, enabled in ((Credential.DEX, dex), (Credential.GITHUB, github))
        if enabled
    ]
    if access is Access.READ:
        return OPEN if config.open_reads else Requirement(tuple(tokens))
    if access in (Access.LOCK, Access.ENVIRONMENT):
        # GitHub Actions tokens release; they never lock (they carry no RBAC roles).
        return Requirement((frozenset({Credential.DEX}),)) if dex else CLOSED
    if access is Access.PROMOTE:
        # A GitHub token promotes only where its policy rule's "promote" list says.
        return Requirement(tuple(tokens))
    signatures = frozenset({Credential.SIGNATURES})
    if access is Access.LEGACY_RELEASE:
        # Kuberpult's /release: the keyring's signatures, plus the Dex login when Dex is on.
        if keyring and dex:
            return Requirement((frozenset({Credential.DEX, Credential.SIGNATURES}),))
        if keyring:
            return Requirement((signatures,))
        return Requirement(tuple(tokens))
    # /api/release: a token, or (without Dex, whose RBAC must always decide) signatures alone.
    return Requirement(tuple(tokens) + ((signatures,) if keyring and not dex else ()))


def settings_hint(access: Access) -> str:
    """Which settings open ``access``, for the 401 of a family that is closed."""
    if access is Access.READ:
        return (
            "reads need a token: enable KUBERPULT_DEX_ENABLED or KUBERPULT_GITHUB_OIDC_POLICY_PATH,"
            " or set KUBERPULT_OPEN_READS=true to let anyone who reaches the server read"
        )
    if access is Access.LOCK:
        return "lock edits need a Dex token: enable KUBERPULT_DEX_ENABLED"
    if access is Access.ENVIRONMENT:
        return "deleting an environment needs a Dex token: enable KUBERPULT_DEX_ENABLED"
    if access is Access.PROMOTE:
        return (
            "release trains and deploys need a token: enable KUBERPULT_DEX_ENABLED (RBAC "
            "DeployReleaseTrain / DeployRelease) or KUBERPULT_GITHUB_OIDC_POLICY_PATH (a rule's "
            '"promote" list)'
        )
    return (
        "releases need a credential: set KUBERPULT_PGP_KEY_RING_PATH (signed manifests), "
        "KUBERPULT_DEX_ENABLED or KUBERPULT_GITHUB_OIDC_POLICY_PATH (tokens), or "
        "KUBERPULT_API_ENABLE_DESPITE_NO_AUTH=true (no authentication, loopback only)"
    )


def summary(config: Config) -> str:
    """One line for the start-up log: what each endpoint family needs."""
    return "; ".join(
        f"{access.value}: {requirement(access, config)}"
        for access in Access
        if access is not Access.PUBLIC
    )
