"""The server's configuration: one typed object, read once from the environment.

This is the only module that reads ``os.environ``. Variable names follow Kuberpult's where
Kuberpult has one.

Over 250 lines on purpose: the typed object, each variable's parser and the list of known names
must change together (an unknown KUBERPULT_* variable is refused).
"""

from __future__ import annotations

import difflib
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class ConfigError(ValueError):
    """A configuration variable is malformed; the message names the variable."""


# A conservative subset of `git check-ref-format --branch`: checked here without running git.
_BRANCH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]*")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


@dataclass(frozen=True)
class Config:
    """Everything the server needs to know, validated at startup."""

    data_dir: Path
    git_url: str
    git_branch: str = "main"
    git_author_name: str = "kuberpult"
    git_author_email: str = "kuberpult@example.com"
    api_enable_despite_no_auth: bool = False
    git_push_timeout: float = 30.0
    #: Seconds a request waits for its push; None: as long as the push may take.
    request_timeout: float | None = None
    max_commits_per_push: int = 200
    max_bytes_per_push: int = 16 * 1024 * 1024
    max_queue: int = 200
    sqlite_busy_timeout_ms: int = 5000
    recovery_interval: float = 5.0
    embedded_remote: bool = False
    release_versions_limit: int = 20
    write_commit_data: bool = False
    pgp_key_ring_path: Path | None = None
    dex_enabled: bool = False
    dex_issuer_url: str = ""
    dex_client_id: str = ""
    dex_rbac_policy_path: Path | None = None
    dex_rbac_team_path: Path | None = None
    github_oidc_policy_path: Path | None = None
    github_oidc_issuer: str = "https://token.actions.githubusercontent.com"
    github_oidc_audience: str = ""
    open_reads: bool = False
    git_ssh_key_path: Path | None = None
    git_known_hosts_path: Path | None = None
    git_token_file: Path | None = None
    git_username: str = "x-access-token"
    test_fault: str = ""
    database_url: str = ""
    database_password_file: Path | None = None
    database_max_connections: int = 10
    replica_name: str = ""
    signature_mode: str = "bytes"
    argocd_generate_files: bool = True
    argocd_server: str = ""
    argocd_insecure: bool = False
    argocd_webhook_secret_path: Path | None = None
    git_web_url: str = ""

    @property
    def database_path(self) -> Path:
        """The SQLite file, the source of truth (when no PostgreSQL URL is configured)."""
        return self.data_dir / "kuberpult.sqlite3"

    @property
    def database_for_display(self) -> str:
        """Which database this server uses, without any password."""
        return redact(self.database_url) if self.database_url else f"SQLite {self.database_path}"

    @property
    def clone_dir(self) -> Path:
        """The exporter's working clone of the manifest repository."""
        return self.data_dir / "manifests-clone"

    @property
    def lock_path(self) -> Path:
        """The file whose flock guards the working clone across workers and threads."""
        return self.data_dir / "repo.lock"

    @property
    def token_auth_enabled(self) -> bool:
        """Whether bearer tokens (Dex or GitHub Actions) are accepted."""
        return self.dex_enabled or self.github_oidc_policy_path is not None

    @property
    def authentication_configured(self) -> bool:
        """Whether any credential (keyring, Dex, GitHub Actions tokens) is configured."""
        return self.token_auth_enabled or self.pgp_key_ring_path is not None

    @property
    def open_without_auth(self) -> bool:
        """The explicit opt-out: no authentication at all, on purpose (loopback only)."""
        return self.api_enable_despite_no_auth and not self.authentication_configured

    @property
    def git_url_for_display(self) -> str:
        """The remote URL with any credentials blanked, for pages, logs and messages."""
        return redact(self.git_url)

    @property
    def git_url_for_argocd(self) -> str:
        """The remote as Argo CD should fetch it: an https URL loses its userinfo (Argo CD
        has its own credentials), an ssh URL keeps its user name but never a password."""
        return _without_secret(self.git_url)

    @property
    def request_budget(self) -> float:
        """Seconds a request (a release, an edit) waits for its push before answering 503
        ``push_pending``; the push itself goes on, up to ``git_push_timeout``."""
        return self.request_timeout or self.git_push_timeout

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Build the configuration from ``environ`` (default: ``os.environ``).

        :raises ConfigError: when a value is malformed; the message names the variable.
        """
        env = os.environ if environ is None else environ
        _refuse_unknown_variables(env)
        data_dir = Path(env.get("KUBERPULT_DATA_DIR") or "./var").absolute()
        git_url = env.get("KUBERPULT_GIT_URL", "").strip()
        embedded = not git_url
        if embedded:
            git_url = str(data_dir / "manifests.git")
        elif git_url.startswith("-"):
            raise ConfigError(f"KUBERPULT_GIT_URL must not start with '-': {git_url!r}")
        branch = env.get("KUBERPULT_GIT_BRANCH") or "main"
        if not _valid_branch(branch):
            raise ConfigError(f"KUBERPULT_GIT_BRANCH is not a valid branch name: {branch!r}")
        author_name = _text(env, "KUBERPULT_GIT_AUTHOR_NAME", "kuberpult")
        author_email = _text(env, "KUBERPULT_GIT_AUTHOR_EMAIL", "kuberpult@example.com")
        push_timeout = _number(env, "KUBERPULT_GIT_PUSH_TIMEOUT", 30.0, low=1.0, high=600.0)
        max_commits = _whole(env, "KUBERPULT_MAX_COMMITS_PER_PUSH", 200, low=1, high=1000)
        max_bytes = _whole(
            env, "KUBERPULT_MAX_BYTES_PER_PUSH", 16 * 1024 * 1024, low=2**20, high=2**31
        )
        versions_limit = _whole(env, "KUBERPULT_RELEASE_VERSIONS_LIMIT", 20, low=5, high=30)
        dex_enabled = _boolean(env, "KUBERPULT_DEX_ENABLED")
        dex_issuer = env.get("KUBERPULT_DEX_ISSUER_URL", "").strip()
        if not dex_issuer and env.get("KUBERPULT_DEX_BASE_URL", "").strip():
            dex_issuer = env["KUBERPULT_DEX_BASE_URL"].strip().rstrip("/") + "/dex"
        dex_client = env.get("KUBERPULT_DEX_CLIENT_ID", "").strip()
        dex_policy = _file(env, "KUBERPULT_DEX_RBAC_POLICY_PATH")
        github_policy = _file(env, "KUBERPULT_GITHUB_OIDC_POLICY_PATH")
        github_audience = env.get("KUBERPULT_GITHUB_OIDC_AUDIENCE", "").strip()
        if github_policy is not None and not github_audience:
            # No shared default: a default audience is one every GitHub user can mint.
            raise ConfigError(
                "KUBERPULT_GITHUB_OIDC_POLICY_PATH needs KUBERPULT_GITHUB_OIDC_AUDIENCE: set it "
                "to this server's public URL (e.g. https://kuberpult.example.com), and request "
                "tokens for that audience in the workflow"
            )
        open_api = _boolean(env, "KUBERPULT_API_ENABLE_DESPITE_NO_AUTH")
        keyring = _file(env, "KUBERPULT_PGP_KEY_RING_PATH")
        if open_api and (dex_enabled or github_policy is not None or keyring is not None):
            raise ConfigError(
                "KUBERPULT_API_ENABLE_DESPITE_NO_AUTH=true is for servers without any "
                "authentication, but authentication is configured (KUBERPULT_PGP_KEY_RING_PATH, "
                "KUBERPULT_DEX_ENABLED or KUBERPULT_GITHUB_OIDC_POLICY_PATH): unset it; use "
                "KUBERPULT_OPEN_READS=true to let anyone who reaches the server read"
            )
        ssh_key = _file(env, "KUBERPULT_GIT_SSH_KEY_PATH")
        known_hosts = _file(env, "KUBERPULT_GIT_SSH_KNOWN_HOSTS_PATH")
        if ssh_key is not None and known_hosts is None:
            raise ConfigError(
                "KUBERPULT_GIT_SSH_KEY_PATH needs KUBERPULT_GIT_SSH_KNOWN_HOSTS_PATH (the "
                "remote's pinned host key, e.g. from ssh-keyscan checked out of band)"
            )
        token_file = _file(env, "KUBERPULT_GIT_TOKEN_FILE")
        if token_file is not None and not git_url.startswith("https://") and not embedded:
            raise ConfigError("KUBERPULT_GIT_TOKEN_FILE needs an https:// KUBERPULT_GIT_URL")
        if dex_enabled:
            for name, value in (
                ("KUBERPULT_DEX_ISSUER_URL (or KUBERPULT_DEX_BASE_URL)", dex_issuer),
                ("KUBERPULT_DEX_CLIENT_ID", dex_client),
                ("KUBERPULT_DEX_RBAC_POLICY_PATH", dex_policy),
            ):
                if not value:
                    raise ConfigError(f"KUBERPULT_DEX_ENABLED=true needs {name}")
        database_url = env.get("KUBERPULT_DATABASE_URL", "").strip()
        if database_url and not database_url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(
                "KUBERPULT_DATABASE_URL must be a postgresql:// URL "
                f"(postgresql://user@host:5432/dbname), got {redact(database_url)!r}"
            )
        password_file = _file(env, "KUBERPULT_DATABASE_PASSWORD_FILE")
        if password_file is not None and not database_url:
            raise ConfigError("KUBERPULT_DATABASE_PASSWORD_FILE needs KUBERPULT_DATABASE_URL")
        replica = _text(env, "KUBERPULT_REPLICA_NAME", f"{socket.gethostname()}:{data_dir}")
        signature_mode = env.get("KUBERPULT_SIGNATURE_MODE", "").strip() or "bytes"
        if signature_mode not in ("bytes", "envelope"):
            raise ConfigError(
                f"KUBERPULT_SIGNATURE_MODE must be 'bytes' or 'envelope', got {signature_mode!r}"
            )
        argocd_server = env.get("KUBERPULT_ARGO_CD_SERVER", "").strip()
        webhook_secret = _file(env, "KUBERPULT_ARGO_CD_WEBHOOK_SECRET_PATH")
        if webhook_secret is not None and not argocd_server:
            raise ConfigError(
                "KUBERPULT_ARGO_CD_WEBHOOK_SECRET_PATH needs KUBERPULT_ARGO_CD_SERVER (the Argo CD "
                "server the webhook goes to)"
            )
        git_web_url = env.get("KUBERPULT_GIT_WEB_URL", "").strip()
        return cls(
            argocd_server=_url(argocd_server, "KUBERPULT_ARGO_CD_SERVER") if argocd_server else "",
            argocd_insecure=_boolean(env, "KUBERPULT_ARGO_CD_INSECURE"),
            argocd_webhook_secret_path=webhook_secret,
            git_web_url=_url(git_web_url, "KUBERPULT_GIT_WEB_URL") if git_web_url else "",
            argocd_generate_files=_boolean(env, "KUBERPULT_ARGO_CD_GENERATE_FILES", default=True),
            signature_mode=signature_mode,
            database_url=database_url,
            database_password_file=password_file,
            database_max_connections=_whole(
                env, "KUBERPULT_DB_MAX_OPEN_CONNECTIONS", 10, low=2, high=1000
            ),
            replica_name=replica,
            pgp_key_ring_path=keyring,
            dex_enabled=dex_enabled,
            dex_issuer_url=_url(dex_issuer, "KUBERPULT_DEX_ISSUER_URL") if dex_enabled else "",
            dex_client_id=dex_client,
            dex_rbac_policy_path=dex_policy,
            dex_rbac_team_path=_file(env, "KUBERPULT_DEX_RBAC_TEAM_PATH"),
            github_oidc_policy_path=github_policy,
            github_oidc_issuer=_url(
                env.get("KUBERPULT_GITHUB_OIDC_ISSUER", "").strip()
                or "https://token.actions.githubusercontent.com",
                "KUBERPULT_GITHUB_OIDC_ISSUER",
            ),
            github_oidc_audience=github_audience,
            open_reads=_boolean(env, "KUBERPULT_OPEN_READS"),
            git_ssh_key_path=ssh_key,
            git_known_hosts_path=known_hosts,
            git_token_file=token_file,
            git_username=_text(env, "KUBERPULT_GIT_USERNAME", "x-access-token"),
            data_dir=data_dir,
            git_url=git_url,
            git_branch=branch,
            git_author_name=author_name,
            git_author_email=author_email,
            api_enable_despite_no_auth=open_api,
            git_push_timeout=push_timeout,
            # Unset (0): as long as the push may take.
            request_timeout=_number(env, "KUBERPULT_REQUEST_TIMEOUT", 0.0, low=1.0, high=600.0)
            or None,
            max_commits_per_push=max_commits,
            max_bytes_per_push=max_bytes,
            max_queue=_whole(env, "KUBERPULT_MAX_QUEUE", 200, low=1, high=1_000_000),
            sqlite_busy_timeout_ms=_whole(
                env, "KUBERPULT_SQLITE_BUSY_TIMEOUT", 5000, low=10, high=600_000
            ),
            recovery_interval=_number(
                env, "KUBERPULT_RECOVERY_INTERVAL", 5.0, low=0.0, high=3600.0
            ),
            embedded_remote=embedded,
            release_versions_limit=versions_limit,
            write_commit_data=_boolean(env, "KUBERPULT_GIT_WRITE_COMMIT_DATA"),
            # Only tests set this; it makes the exporter kill its own worker at a named step.
            test_fault=env.get("KUBERPULT_TEST_FAULT", ""),
        )


#: Every variable the server reads. Anything else that starts with KUBERPULT_ is a mistake
#: (a misspelt keyring variable would otherwise leave the server running without signatures).
KNOWN_VARIABLES = frozenset(
    {
        "KUBERPULT_DATA_DIR",
        "KUBERPULT_GIT_URL",
        "KUBERPULT_GIT_BRANCH",
        "KUBERPULT_GIT_AUTHOR_NAME",
        "KUBERPULT_GIT_AUTHOR_EMAIL",
        "KUBERPULT_GIT_PUSH_TIMEOUT",
        "KUBERPULT_GIT_WRITE_COMMIT_DATA",
        "KUBERPULT_GIT_SSH_KEY_PATH",
        "KUBERPULT_GIT_SSH_KNOWN_HOSTS_PATH",
        "KUBERPULT_GIT_TOKEN_FILE",
        "KUBERPULT_GIT_USERNAME",
        "KUBERPULT_REQUEST_TIMEOUT",
        "KUBERPULT_MAX_COMMITS_PER_PUSH",
        "KUBERPULT_MAX_BYTES_PER_PUSH",
        "KUBERPULT_MAX_QUEUE",
        "KUBERPULT_RELEASE_VERSIONS_LIMIT",
        "KUBERPULT_SQLITE_BUSY_TIMEOUT",
        "KUBERPULT_RECOVERY_INTERVAL",
        "KUBERPULT_API_ENABLE_DESPITE_NO_AUTH",
        "KUBERPULT_OPEN_READS",
        "KUBERPULT_PGP_KEY_RING_PATH",
        "KUBERPULT_DEX_ENABLED",
        "KUBERPULT_DEX_ISSUER_URL",
        "KUBERPULT_DEX_BASE_URL",
        "KUBERPULT_DEX_CLIENT_ID",
        "KUBERPULT_DEX_RBAC_POLICY_PATH",
        "KUBERPULT_DEX_RBAC_TEAM_PATH",
        "KUBERPULT_GITHUB_OIDC_POLICY_PATH",
        "KUBERPULT_GITHUB_OIDC_ISSUER",
        "KUBERPULT_GITHUB_OIDC_AUDIENCE",
        "KUBERPULT_TEST_FAULT",
        "KUBERPULT_DATABASE_URL",
        "KUBERPULT_DATABASE_PASSWORD_FILE",
        "KUBERPULT_DB_MAX_OPEN_CONNECTIONS",
        "KUBERPULT_REPLICA_NAME",
        "KUBERPULT_SIGNATURE_MODE",
        "KUBERPULT_ARGO_CD_GENERATE_FILES",
        "KUBERPULT_ARGO_CD_SERVER",
        "KUBERPULT_ARGO_CD_INSECURE",
        "KUBERPULT_ARGO_CD_WEBHOOK_SECRET_PATH",
        "KUBERPULT_GIT_WEB_URL",
    }
)


#: The client's variables: a shell or CI job may hold them next to the server's.
CLIENT_VARIABLES = frozenset(
    {
        "KUBERPULT_DEX_ACCESS_TOKEN",
        "KUBERPULT_IAP_TOKEN",
        "KUBERPULT_OAUTH_AUDIENCE",
        "KUBERPULT_OAUTH_CLIENT_ID",
        "KUBERPULT_OAUTH_CLIENT_SECRET",
        "KUBERPULT_GPG_PASSPHRASE",
    }
)


def _refuse_unknown_variables(env: Mapping[str, str]) -> None:
    known = KNOWN_VARIABLES | CLIENT_VARIABLES
    unknown = sorted(n for n in env if n.startswith("KUBERPULT_") and n not in known)
    if not unknown:
        return
    name = unknown[0]
    close = difflib.get_close_matches(name, KNOWN_VARIABLES, n=1, cutoff=0.75)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ConfigError(
        f"unknown setting {name}{hint}: the server reads only the variables listed in the "
        "README; unset it"
    )


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]*@")


def redact(text: str) -> str:
    """``text`` with the userinfo (``user:token@``) of every URL in it blanked out."""
    return _USERINFO.sub(r"\1***@", text)


_HTTP_USERINFO = re.compile(r"(?i)^(https?://)[^/@\s]*@")
_SSH_PASSWORD = re.compile(r"(?i)^(ssh://[^/:@\s]*):[^/@\s]*@")


def _without_secret(url: str) -> str:
    return _SSH_PASSWORD.sub(r"\1@", _HTTP_USERINFO.sub(r"\1", url))


def _valid_branch(name: str) -> bool:
    return (
        _BRANCH.fullmatch(name) is not None
        and ".." not in name
        and "//" not in name
        and not name.endswith(("/", ".", ".lock"))
        and "/." not in name
    )


def _text(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    if any(c in value for c in "<>\n\r\0"):
        raise ConfigError(f"{name} must not contain '<', '>', newlines or NUL: {value!r}")
    return value


def _boolean(env: Mapping[str, str], name: str, *, default: bool = False) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name} must be 'true' or 'false', got {env[name]!r}")


def _number(env: Mapping[str, str], name: str, default: float, *, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {raw!r}")
    return value


def _whole(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if raw and not raw.isdigit():
        raise ConfigError(f"{name} must be a whole number, got {raw!r}")
    return int(_number(env, name, default, low=low, high=high))


def _file(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    path = Path(raw)
    if not path.is_file():
        raise ConfigError(f"{name} names {raw!r}, which is not a readable file")
    return path


def _url(value: str, name: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")
