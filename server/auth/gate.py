"""The server's authentication setup and its decisions, independent of the web framework.

Built once at startup from the configuration (a bad keyring or policy stops the server with a
message naming the file and line); the HTTP layer asks it who a token belongs to, whether
that principal may release or lock, and who the git author is.

Over 250 lines: the decisions need every credential type side by side; parsing and verification
live in the sibling modules.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from server import rules
from server.auth.access import Access
from server.auth.access import Credential
from server.auth.access import Requirement
from server.auth.access import requirement
from server.auth.access import settings_hint
from server.auth.envelope import envelope
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
from server.errors import ValidationError
from server.models import ReleaseRequest
from server.models import StoredRelease
from server.repo import layout
from server.repo.environments import read_config
from server.repo.safe_tree import SafeTree
from server.store import Store


@dataclass(frozen=True)
class Principal:
    """A caller whose token verified: which kind of issuer, and its claims."""

    kind: str  # "dex" or "github"
    claims: dict[str, Any]
    #: Applications a GitHub token may read (None: all).
    readable: frozenset[str] | None = None

    @property
    def credential(self) -> Credential:
        """The credential this token is."""
        return Credential.DEX if self.kind == "dex" else Credential.GITHUB

    @property
    def user(self) -> User:
        """The caller as RBAC sees it. The email names the caller in the policy and the team
        file only when the provider vouches for it (``email_verified``): an unverified email
        is whatever the user typed into their profile."""
        groups = self.claims.get("groups") or []
        if isinstance(groups, str):
            groups = [groups]
        email = str(self.claims.get("email") or "")
        verified = self.claims.get("email_verified") is True
        name = str(self.claims.get("name") or email or self.claims.get("sub") or "")
        return User(
            name=name, email=email if verified else "", groups=tuple(str(g) for g in groups)
        )

    @property
    def author(self) -> tuple[str, str] | None:
        """The git author the token names (``name`` and ``email`` claims), if it names one.

        :raises ValidationError: a claim that could not be written safely into a commit.
        """
        email = self.claims.get("email")
        if not email:
            return None
        name = self.claims.get("name") or email
        return (
            rules.author_header("token claim 'name'", str(name)),
            rules.author_header("token claim 'email'", str(email)),
        )

    def requester(self) -> str | None:
        """What the exporter needs to decide this caller's permissions again (JSON)."""
        if self.kind != "dex":
            return None  # GitHub rules do not depend on the environment configs
        user = self.user
        return json.dumps(
            {"kind": "dex", "name": user.name, "email": user.email, "groups": list(user.groups)}
        )


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
        kind = self._kinds[issuer]
        if kind == "github":
            assert self.github_policy is not None  # noqa: S101 - github issuer implies a policy
            if not self.github_policy.matching(claims):
                # Anyone can mint a token for this audience from their own repository.
                raise Unauthorized(
                    f"no rule of KUBERPULT_GITHUB_OIDC_POLICY_PATH matches the token of "
                    f"repository {claims.get('repository')!r} (id {claims.get('repository_id')!r},"
                    f" ref {claims.get('ref')!r}, environment {claims.get('environment')!r})"
                )
            return Principal(kind, claims, self.github_policy.readable(claims))
        return Principal(kind, claims)

    def require(self, access: Access, principal: Principal | None) -> None:
        """Admit a request of a family that needs no body to decide (reads, locks).

        :raises Unauthorized: no acceptable credential. :raises Forbidden: a token of a kind
            this family never accepts.
        """
        needed = requirement(access, self.config)
        presented = {principal.credential} if principal else set()
        if needed.met_by(presented):
            return
        if principal is not None:
            raise Forbidden(
                f"PermissionDenied a {principal.credential} may not do this; it needs {needed}"
            )
        raise Unauthorized(_missing(access, needed))

    def admit_release(self, access: Access, principal: Principal | None) -> None:
        """Refuse a release at once when no body could make up for the missing credential
        (nothing is parsed and no gpg runs for such a request)."""
        needed = requirement(access, self.config)
        presented = {principal.credential} if principal else set()
        if not needed.possible_with(presented):
            raise Unauthorized(_missing(access, needed))

    def authorize_release(
        self, access: Access, principal: Principal | None, request: ReleaseRequest, store: Store
    ) -> ReleaseRequest:
        """Check the request's credentials and permissions; return it with the git author and
        the requester the exporter checks again.

        :raises Unauthorized: credentials missing. :raises ValidationError: a bad signature or
            an unsafe token claim. :raises Forbidden: not allowed.
        """
        needed = requirement(access, self.config)
        presented = {principal.credential} if principal else set()
        if self.signatures is not None and not needed.met_by(presented):
            if (
                not request.signatures
                and needed.possible_with(presented)
                and access is Access.RELEASE
            ):
                raise Unauthorized(_missing(access, needed))
            self._check_signatures(request)  # 400 per environment, as Kuberpult's /release
            presented.add(Credential.SIGNATURES)
        elif self.signatures is not None and request.signatures:
            self._check_signatures(request)  # sent, so they must be good
        if not needed.met_by(presented):
            raise Unauthorized(_missing(access, needed))
        if principal is None:
            return request
        author = principal.author
        if principal.kind == "github":
            assert self.github_policy is not None  # noqa: S101 - github issuer implies a policy
            self.github_policy.check_release(
                principal.claims, request.application, sorted(request.manifests)
            )
        else:
            self._check_dex_release(principal.user, request, store)
        return dataclasses.replace(
            request,
            author_name=author[0] if author else request.author_name,
            author_email=author[1] if author else request.author_email,
            requester=principal.requester(),
        )

    def _check_signatures(self, request: ReleaseRequest) -> None:
        assert self.signatures is not None  # noqa: S101 - only called with a keyring
        if self.config.signature_mode != "envelope":
            for env, manifest in sorted(request.manifests.items()):
                self.signatures.verify(env, manifest, request.signatures.get(env, []))
            return
        if request.version is None:
            raise ValidationError(
                "version",
                "envelope signatures (KUBERPULT_SIGNATURE_MODE=envelope) cover the version: "
                "send the version the manifests were signed for",
            )
        for env, manifest in sorted(request.manifests.items()):
            signed = envelope(request.application, env, request.version, manifest)
            try:
                self.signatures.verify(env, signed, request.signatures.get(env, []))
            except ValidationError as refused:
                raise ValidationError(
                    f"signatures[{env}]",
                    f"{refused.message}. This server takes envelope signatures only: each must "
                    f"sign the envelope of application {request.application!r}, environment "
                    f"{env!r}, version {request.version} and this manifest; a signature made "
                    "for another application, environment or version, or over the manifest "
                    "bytes alone, is refused",
                ) from None

    def _check_dex_release(self, user: User, request: ReleaseRequest, store: Store) -> None:
        """The early check, on the last known environment configs (the exporter checks again
        on the tree it applies the release to)."""
        assert self.dex_policy is not None  # noqa: S101 - dex issuer implies a policy
        envs = sorted(request.manifests)
        mirror = store.environments()
        groups = {env: mirror.get(env, (False, env))[1] for env in envs}
        highest = store.highest_version(request.application)
        newest = request.version is None or highest is None or request.version > highest
        deploy_to = [env for env in envs if newest and mirror.get(env, (False, env))[0]]
        team = request.team or store.application_team(request.application)
        self.dex_policy.check_release(user, request.application, groups, deploy_to, team)

    def guard_release_on_tree(self, release: StoredRelease, tree: SafeTree) -> None:
        """The exporter's check, under the repository lock, on the tree it is about to write:
        the requester's permissions as the environment configs there say.

        :raises Forbidden: the release must not be written.
        """
        if not release.requester or self.dex_policy is None:
            return
        data = json.loads(release.requester)
        user = User(data["name"], data["email"], tuple(data["groups"]))
        envs = sorted(release.manifests)
        configs = {env: read_config(tree, env) for env in envs}
        groups = {env: configs[env].group for env in envs}
        versions = layout.release_versions(tree, release.application)
        newest = not versions or release.version >= max(versions)
        deploy_to = [env for env in envs if newest and configs[env].upstream_latest]
        team = release.team or layout.application_team(tree, release.application)
        self.dex_policy.check_release(user, release.application, groups, deploy_to, team)

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
            return  # admitted without a token: the server is open on purpose
        if principal.kind == "github":
            raise Forbidden("PermissionDenied GitHub Actions tokens may only create releases")
        assert self.dex_policy is not None  # noqa: S101 - dex issuer implies a policy
        group = store.environments().get(environment, (False, environment))[1]
        self.dex_policy.check_action(principal.user, action, group, environment, application)

    def permissions(self, principal: Principal | None) -> CallerPermissions:
        """The caller's permissions, for edits that decide them on the tree they change."""
        return CallerPermissions(principal, self.dex_policy, self.github_policy)

    def may_read(self, principal: Principal | None, application: str) -> bool:
        """Whether the caller may read ``application`` (GitHub tokens: their rules' apps)."""
        return principal is None or principal.readable is None or application in principal.readable

    def may_read_release(self, principal: Principal | None, application: str) -> bool:
        """Whether the caller holds a read credential for ``application`` (a release request
        authenticated by signatures alone does not)."""
        presented = {principal.credential} if principal else set()
        readable = requirement(Access.READ, self.config).met_by(presented)
        return readable and self.may_read(principal, application)

    def check_read(self, principal: Principal | None, application: str) -> None:
        """:raises Forbidden: the caller may not read ``application``."""
        if not self.may_read(principal, application):
            raise Forbidden(
                f"PermissionDenied no rule of the GitHub policy lets this token read "
                f"application {application!r}"
            )


def _missing(access: Access, needed: Requirement) -> str:
    if not needed.accepted:
        return settings_hint(access)
    return f"authentication required: this endpoint accepts {needed}"


#: The RBAC actions a GitHub token may be granted by a rule's "promote" list.
_PROMOTING = frozenset({"DeployReleaseTrain", "DeployRelease"})


class CallerPermissions:
    """``EditPermissions`` for one caller: Dex users by the RBAC policy (and the team file),
    GitHub tokens by their rules' ``promote`` lists, an admitted anonymous caller (the
    explicit opt-out) for everything."""

    def __init__(
        self,
        principal: Principal | None,
        dex_policy: Policy | None,
        github_policy: GitHubPolicy | None,
    ) -> None:
        self.principal = principal
        self.dex_policy = dex_policy
        self.github_policy = github_policy

    def check_environment(
        self, action: str, environment: str, group: str, application: str | None = None
    ) -> None:
        principal = self.principal
        if principal is None:
            return
        if principal.kind == "dex":
            assert self.dex_policy is not None  # noqa: S101 - dex issuer implies a policy
            self.dex_policy.check_action(principal.user, action, group, environment, application)
            return
        assert self.github_policy is not None  # noqa: S101 - github issuer implies a policy
        if action not in _PROMOTING:
            raise Forbidden(
                "PermissionDenied GitHub Actions tokens may only release and promote "
                f"(not {action})"
            )
        if not self.github_policy.promoting_rules(principal.claims, environment):
            raise Forbidden(
                f"PermissionDenied no rule of the GitHub policy lets repository "
                f"{principal.claims.get('repository')!r} promote to environment "
                f'{environment!r} (a matching rule\'s "promote" list must name it)'
            )

    def application_refusal(self, environment: str, application: str, team: str) -> str | None:
        principal = self.principal
        if principal is None:
            return None
        if principal.kind == "dex":
            teams = self.dex_policy.teams if self.dex_policy else None
            if teams is None or not team:
                return None
            user = principal.user
            if user.email in teams.get(team, set()) | teams.get("*", set()):
                return None
            return (
                f"skipping application {json.dumps(application)} in environment "
                f"{json.dumps(environment)} because the user {user.name} is not in team "
                f"{json.dumps(team)}"
            )
        assert self.github_policy is not None  # noqa: S101 - github issuer implies a policy
        for rule in self.github_policy.promoting_rules(principal.claims, environment):
            if application in rule.applications or "*" in rule.applications:
                return None
        return (
            f"skipping application {json.dumps(application)} in environment "
            f"{json.dumps(environment)} because no rule of the GitHub policy that promotes to "
            "it names the application"
        )
