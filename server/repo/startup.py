"""A worker's start: create the embedded remote if it is the default, sync the clone, seed the
embedded remote's first environments, and tell /readyz whether the remote answered."""

from __future__ import annotations

import logging

from server.config import Config
from server.repo import mirror
from server.repo.credentials import GitCredentials
from server.repo.git import Git
from server.repo.git import GitError
from server.repo.manifest_repo import ManifestRepo
from server.repo.reachability import remote_view
from server.repo.reachability import remote_view_name
from server.repo.safe_tree import changed
from server.store import Store

log = logging.getLogger(__name__)

# The embedded default's first start writes these two environments.
SEED_ENVIRONMENTS: dict[tuple[str, ...], bytes] = {
    ("environments", "development", "config.json"): b'{"upstream":{"latest":true}}\n',
    ("environments", "staging", "config.json"): b'{"upstream":{"environment":"development"}}\n',
}


def open_clone(config: Config) -> ManifestRepo:
    """The server's working clone of the configured remote."""
    return ManifestRepo(
        config.clone_dir,
        config.git_url,
        config.git_branch,
        config.data_dir / "git-home",
        GitCredentials.for_config(config),
    )


def prepare(config: Config, store: Store) -> None:
    """Bring the clone up to date at start (the caller holds the repository lock).

    Failures are logged, not raised: the server still takes releases while the remote is away,
    and pushes them when it is back.
    """
    committer = (config.git_author_name, config.git_author_email)
    # For /readyz: why the remote has not answered a fetch yet; None once it has.
    unanswered: str | None = "the clone was not synced"
    try:
        if config.embedded_remote:
            _create_embedded_remote(config)
        repo = open_clone(config)
        repo.take_clean_marker()
        mirror.sync(repo, store, committer, config.git_push_timeout)
        unanswered = None
        if config.embedded_remote and repo.head() is None:
            paths = changed(*(repo.tree.write(p, c) for p, c in SEED_ENVIRONMENTS.items()))
            stream = repo.commits(committer)
            stream.add("seed environments development and staging\n", committer, paths)
            stream.finish()
            repo.push(config.git_push_timeout)
            mirror.record_environments(repo, store)
        repo.mark_clean()
    except (GitError, OSError) as error:
        log.warning("manifest repository not ready at startup: %s", error)
        if unanswered is not None:
            unanswered = str(error)
    store.save_view(remote_view_name(config), remote_view(unanswered))


def _create_embedded_remote(config: Config) -> None:
    bare = config.data_dir / "manifests.git"
    if not (bare / "HEAD").exists():
        bare.mkdir(parents=True, exist_ok=True)
        Git(bare, config.data_dir / "git-home").run(
            ["init", "-q", "--bare", f"--initial-branch={config.git_branch}"]
        )
