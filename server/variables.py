"""Every variable the server reads, with its default and meaning: the one list that
``KNOWN_VARIABLES``, ``kuberpult-server config`` and the README's configuration table come from
(a test compares the README with ``reference_table()``).

Over 250 lines: it is mostly the table itself, one entry per variable, as data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from server.config import Config
from server.config import redact


@dataclass(frozen=True)
class Variable:
    """One environment variable: its default as shown, what it does, its effective value."""

    name: str
    default: str
    meaning: str
    value: Callable[[Config], object]


def _path(value: object) -> str:
    return "unset" if value is None else str(value)


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "KUBERPULT_DATA_DIR",
        "`./var`",
        "the SQLite file, the clone (git objects only, no working tree), the repo lock",
        lambda c: c.data_dir,
    ),
    Variable(
        "KUBERPULT_GIT_URL",
        "the embedded default: `<data dir>/manifests.git`, created and seeded",
        "the manifest repository; any URL git can push to",
        lambda c: (
            f"{c.git_url_for_display} (embedded default)"
            if c.embedded_remote
            else c.git_url_for_display
        ),
    ),
    Variable(
        "KUBERPULT_GIT_BRANCH",
        "`main`",
        "the branch to write; created by the first push if the remote lacks it",
        lambda c: c.git_branch,
    ),
    Variable(
        "KUBERPULT_GIT_AUTHOR_NAME",
        "`kuberpult`",
        "the committer, and the author when a request has no author headers",
        lambda c: c.git_author_name,
    ),
    Variable(
        "KUBERPULT_GIT_AUTHOR_EMAIL",
        "`kuberpult@example.com`",
        "the committer's email",
        lambda c: c.git_author_email,
    ),
    Variable(
        "KUBERPULT_GIT_SSH_KEY_PATH",
        "unset",
        "an SSH deploy key (needs the known hosts file)",
        lambda c: _path(c.git_ssh_key_path),
    ),
    Variable(
        "KUBERPULT_GIT_SSH_KNOWN_HOSTS_PATH",
        "unset",
        "the remote's pinned host key",
        lambda c: _path(c.git_known_hosts_path),
    ),
    Variable(
        "KUBERPULT_GIT_TOKEN_FILE",
        "unset",
        "an https token, read from this file by a git credential helper",
        lambda c: _path(c.git_token_file),
    ),
    Variable(
        "KUBERPULT_GIT_USERNAME",
        "`x-access-token`",
        "the user name sent with the token",
        lambda c: c.git_username,
    ),
    Variable(
        "KUBERPULT_GIT_PUSH_TIMEOUT",
        "`30`",
        "seconds a push may take before it is stopped (the pending releases are pushed by "
        "the next round)",
        lambda c: c.git_push_timeout,
    ),
    Variable(
        "KUBERPULT_REQUEST_TIMEOUT",
        "`KUBERPULT_GIT_PUSH_TIMEOUT`",
        "seconds a release or an edit waits for its push; then it answers 503 `push_pending` "
        "and the push goes on in the background",
        lambda c: c.request_budget,
    ),
    Variable(
        "KUBERPULT_GIT_WRITE_COMMIT_DATA",
        "`false`",
        "also write Kuberpult's `commits/` tree",
        lambda c: c.write_commit_data,
    ),
    Variable(
        "KUBERPULT_ARGO_CD_GENERATE_FILES",
        "`true`",
        "write `argocd/v1alpha1/<env>.yaml` (an AppProject and the Applications) for every "
        "environment whose `config.json` has an `argocd` object",
        lambda c: c.argocd_generate_files,
    ),
    Variable(
        "KUBERPULT_ARGO_CD_SERVER",
        "unset (no webhook)",
        "Argo CD's base URL: after every push, a GitHub-style push event goes to "
        "`<server>/api/webhook` so Argo CD refreshes at once",
        lambda c: redact(c.argocd_server) or "unset",
    ),
    Variable(
        "KUBERPULT_ARGO_CD_WEBHOOK_SECRET_PATH",
        "unset",
        "a file with Argo CD's `webhook.github.secret`: the webhook is signed "
        "(`X-Hub-Signature-256`)",
        lambda c: _path(c.argocd_webhook_secret_path),
    ),
    Variable(
        "KUBERPULT_ARGO_CD_INSECURE",
        "`false`",
        "send the webhook without checking Argo CD's TLS certificate",
        lambda c: c.argocd_insecure,
    ),
    Variable(
        "KUBERPULT_GIT_WEB_URL",
        "derived from `KUBERPULT_GIT_URL` (`git@host:org/repo.git` → `https://host/org/repo`)",
        "the repository's web URL, sent as the webhook's `repository.html_url`; Argo CD "
        "matches it against its applications' `repoURL`",
        lambda c: c.git_web_url or "derived",
    ),
    Variable(
        "KUBERPULT_RELEASE_VERSIONS_LIMIT",
        "`20`",
        "releases kept per application by the cleanup rule (5 to 30)",
        lambda c: c.release_versions_limit,
    ),
    Variable(
        "KUBERPULT_MAX_BYTES_PER_PUSH",
        "`16777216` (16 MiB)",
        "manifest bytes per push: a batch takes pending releases until the next would pass it "
        "(a bigger release goes alone)",
        lambda c: c.max_bytes_per_push,
    ),
    Variable(
        "KUBERPULT_MAX_COMMITS_PER_PUSH",
        "`200`",
        "a cap on releases per push (one commit each), beside the byte budget",
        lambda c: c.max_commits_per_push,
    ),
    Variable(
        "KUBERPULT_MAX_QUEUE",
        "`200`",
        "releases waiting for a push before new ones get 503",
        lambda c: c.max_queue,
    ),
    Variable(
        "KUBERPULT_RECOVERY_INTERVAL",
        "`5`",
        "seconds between background pushes of pending releases (0: off)",
        lambda c: c.recovery_interval,
    ),
    Variable(
        "KUBERPULT_SQLITE_BUSY_TIMEOUT",
        "`5000`",
        "milliseconds to wait for the SQLite write lock before 503",
        lambda c: c.sqlite_busy_timeout_ms,
    ),
    Variable(
        "KUBERPULT_DATABASE_URL",
        "unset: SQLite in the data dir",
        "`postgresql://user@host:5432/db`: PostgreSQL, shared by several replicas",
        lambda c: c.database_for_display,
    ),
    Variable(
        "KUBERPULT_DATABASE_PASSWORD_FILE",
        "unset",
        "the database password, read from a file (else from the URL); never shown",
        lambda c: _path(c.database_password_file),
    ),
    Variable(
        "KUBERPULT_DB_MAX_OPEN_CONNECTIONS",
        "`10`",
        "pooled PostgreSQL connections per worker process; a request that waited 5 s for one "
        "opens its own",
        lambda c: c.database_max_connections,
    ),
    Variable(
        "KUBERPULT_REPLICA_NAME",
        "`<hostname>:<data dir>`",
        "this replica's name in `/readyz` and in `pg_stat_activity`",
        lambda c: c.replica_name,
    ),
    Variable(
        "KUBERPULT_API_ENABLE_DESPITE_NO_AUTH",
        "`false`",
        "open every endpoint without authentication (loopback only; refused beside a "
        "credential setting)",
        lambda c: c.api_enable_despite_no_auth,
    ),
    Variable(
        "KUBERPULT_OPEN_READS",
        "`false`",
        "reads (overview page, read API) need no credential",
        lambda c: c.open_reads,
    ),
    Variable(
        "KUBERPULT_PGP_KEY_RING_PATH",
        "unset",
        "a public keyring: signed manifests are a release credential",
        lambda c: _path(c.pgp_key_ring_path),
    ),
    Variable(
        "KUBERPULT_SIGNATURE_MODE",
        "`bytes`",
        "`envelope`: each signature signs the release's envelope (application, environment, "
        "version, manifest digest), so it cannot be replayed for another release",
        lambda c: c.signature_mode,
    ),
    Variable(
        "KUBERPULT_DEX_ENABLED",
        "`false`",
        "OIDC tokens from Dex, with RBAC",
        lambda c: c.dex_enabled,
    ),
    Variable(
        "KUBERPULT_DEX_ISSUER_URL", "unset", "the Dex issuer", lambda c: c.dex_issuer_url or "unset"
    ),
    Variable(
        "KUBERPULT_DEX_BASE_URL",
        "unset",
        "Kuberpult's spelling: the issuer is this plus `/dex`",
        lambda c: c.dex_issuer_url or "unset",
    ),
    Variable(
        "KUBERPULT_DEX_CLIENT_ID",
        "unset",
        "the token audience Dex issues for",
        lambda c: c.dex_client_id or "unset",
    ),
    Variable(
        "KUBERPULT_DEX_RBAC_POLICY_PATH",
        "unset",
        "Kuberpult's RBAC policy csv",
        lambda c: _path(c.dex_rbac_policy_path),
    ),
    Variable(
        "KUBERPULT_DEX_RBAC_TEAM_PATH",
        "unset",
        "Kuberpult's team file (users and groups per team)",
        lambda c: _path(c.dex_rbac_team_path),
    ),
    Variable(
        "KUBERPULT_GITHUB_OIDC_POLICY_PATH",
        "unset",
        "GitHub Actions tokens and which workflows may release what",
        lambda c: _path(c.github_oidc_policy_path),
    ),
    Variable(
        "KUBERPULT_GITHUB_OIDC_AUDIENCE",
        "required with the policy",
        "the audience the workflow asks its token for (this server's URL)",
        lambda c: c.github_oidc_audience or "unset",
    ),
    Variable(
        "KUBERPULT_GITHUB_OIDC_ISSUER",
        "GitHub's",
        "the token issuer (GitHub Enterprise: its own)",
        lambda c: c.github_oidc_issuer,
    ),
    Variable(
        "KUBERPULT_TEST_FAULT",
        "unset",
        "for crash tests only: a worker kills itself at the named step",
        lambda c: c.test_fault or "unset",
    ),
)


def reference_table() -> str:
    """The README's configuration table (markdown)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{v.name}` | {v.default} | {v.meaning} |" for v in VARIABLES]
    return "\n".join(rows) + "\n"


def effective(config: Config) -> list[tuple[str, str]]:
    """(variable, effective value) for every variable, secrets redacted."""
    return [(v.name, redact(_shown(v.value(config)))) for v in VARIABLES]


def _shown(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
