"""The server's authentication setup and its decisions, independent of the web framework.

Built once at startup from the configuration (a bad keyring or policy stops the server with a
message naming the file and line); the HTTP layer asks it who a token belongs to, whether
that principal may release or lock, and who the git author is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.auth.github import GitHubPolicy
from server.auth.github import parse_github_policy
from server.auth.oidc import OidcIssuer
from server.auth.oidc import TokenVerifier
from server.auth.rbac import Policy
from server.auth.rbac import PolicyError
from server.auth.rbac import User
from server.auth.rbac import parse_policy
from server.auth.rbac import parse_teams
from server.auth.signatures import KeyringError
from server.auth.signatures import SignatureVerifier
from server.config import Config
from server.config import ConfigError
from server.errors import Forbidden
from server.errors import Unauthorized
from server.models import ReleaseRequest
from server.store import Store


@dataclass(frozen=True)
class Principal:
    """A caller whose token verified: which kind of issuer, and its claims."""

    kind: str  # "dex" or "github"
    claims: dict[str, Any]

    @property
    def user(self) -> User:
        """The caller as RBAC sees it."""
        groups = self.claims.get("groups") or []
        if isinstance(groups, str):
            groups = [groups]
        email = str(self.claims.get("email") or "")
        name = str(self.claims.get("name") or email or self.claims.get("sub") or "")
        return User(name=name, email=email, groups=tuple(str(g) for g in groups))

    @property
    def author(self) -> tuple[str, str] | None:
        """The git author the token names (``name`` and ``email`` claims), if it names one."""
        user = self.user
        return (user.name, user.email) if user.email else None


class Auth:
    """Signatures, token issuers and policies, as configured."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.signatures: SignatureVerifier | None = None
        self.dex_policy: Policy | None = None
        self.github_policy: GitHubPolicy | None = None
        issuers: list[OidcIssuer] = []
        self._kinds: dict[str, str] = {}
        if config.pgp_key_ring_path is not None:
            try:
                self.signatures = SignatureVerifier(
                    config.pgp_key_ring_path, config.data_dir / "gnupg"
                )
            except KeyringError as error:
                raise ConfigError(str(error)) from None
        try:
            if config.dex_enabled and config.dex_rbac_policy_path is not None:
                path = config.dex_rbac_policy_path
                self.dex_policy = parse_policy(path.read_text(), str(path))
                if config.dex_rbac_team_path is not None:
                    team_path = config.dex_rbac_team_path
                    self.dex_policy.teams = parse_teams(team_path.read_text(), str(team_path))
                issuers.append(OidcIssuer(config.dex_issuer_url, config.dex_client_id))
                self._kinds[config.dex_issuer_url] = "dex"
            if config.github_oidc_policy_path is not None:
                path = config.github_oidc_policy_path
                self.github_policy = parse_github_policy(path.read_text(), str(path))
                issuers.append(OidcIssuer(config.github_oidc_issuer, config.github_oidc_audience))
                self._kinds[config.github_oidc_issuer] = "github"
        except (PolicyError, OSError) as error:
            raise ConfigError(str(error)) from None
        self.tokens = TokenVerifier(issuers) if issuers else None

    def authenticate(self, token: str) -> Principal:
        """The principal of a bearer token. :raises Unauthorized: with the reason."""
        if self.tokens is None:
            raise Unauthorized("bearer tokens are not enabled on this server")
        if not token:
            raise Unauthorized(
                "kuberpult.oauth token not found: send 'Authorization: Bearer <token>' or the "
                "kuberpult.oauth cookie"
            )
        issuer, claims = self.tokens.verify(token)
        return Principal(self._kinds[issuer], claims)

    def check_signatures(self, request: ReleaseRequest, *, required: bool) -> None:
        """Verify the manifests' signatures when a keyring is set (always when ``required``,
        else only if the request carries signatures). :raises ValidationError: per env."""
        if self.signatures is None or not (required or request.signatures):
            return
        for env, manifest in sorted(request.manifests.items()):
            self.signatures.verify(env, manifest, request.signatures.get(env, []))

    def authorize_release(
        self, principal: Principal | None, request: ReleaseRequest, store: Store
    ) -> None:
        """Raise ``Forbidden`` unless ``principal`` may make this release."""
        if principal is None:
            return
        envs = sorted(request.manifests)
        if principal.kind == "github":
            assert self.github_policy is not None  # noqa: S101 - github issuer implies a policy
            self.github_policy.check_release(principal.claims, request.application, envs)
            return
        assert self.dex_policy is not None  # noqa: S101 - dex issuer implies a policy
        mirror = store.environments()
        groups = {env: mirror.get(env, (False, env))[1] for env in envs}
        highest = store.highest_version(request.application)
        newest = request.version is None or highest is None or request.version > highest
        deploy_to = [env for env in envs if newest and mirror.get(env, (False, env))[0]]
        team = request.team or store.application_team(request.application)
        self.dex_policy.check_release(principal.user, request.application, groups, deploy_to, team)

    def authorize_lock(
        self,
        principal: Principal | None,
        action: str,
        environment: str,
        application: str | None,
        store: Store,
    ) -> None:
        """Raise ``Forbidden`` unless ``principal`` may create or delete this lock."""
        if principal is None:
            return
        if principal.kind == "github":
            raise Forbidden("PermissionDenied GitHub Actions tokens may only create releases")
        assert self.dex_policy is not None  # noqa: S101 - dex issuer implies a policy
        group = store.environments().get(environment, (False, environment))[1]
        self.dex_policy.check_action(principal.user, action, group, environment, application)
