"""What the store knows about the repository, refreshed from the clone after each sync:
releases someone else wrote (adopted), releases that are gone, and the environment configs."""

from __future__ import annotations

import logging

from server.repo import adoption
from server.repo.environments import read_config
from server.repo.git_objects import MissingObject
from server.repo.manifest_repo import ManifestRepo
from server.repo.safe_tree import ApplyError
from server.repo.view import environments_view
from server.rules import NAME
from server.store import Store

log = logging.getLogger(__name__)


def sync(repo: ManifestRepo, store: Store, author: tuple[str, str], timeout: float) -> None:
    """Reset the clone to the remote, adopt releases someone else wrote, and refresh the
    mirror of environment configs."""
    try:
        _sync_once(repo, store, author, timeout)
    except MissingObject as error:
        # The fetch did not notice (git trusts that it holds what its branch reaches); a new
        # clone brings every object.
        if not repo.start_over_unless_lately(str(error)):
            raise
        _sync_once(repo, store, author, timeout)


def _sync_once(repo: ManifestRepo, store: Store, author: tuple[str, str], timeout: float) -> None:
    repo.sync(timeout)
    adopt(repo, store, author)
    record_environments(repo, store)


def adopt(repo: ManifestRepo, store: Store, author: tuple[str, str]) -> None:
    """Import the clone's releases that the store does not know (see adoption), and mark the
    pushed releases the clone no longer holds as removed."""
    # Never fails the sync: what cannot be read is skipped (see adoption).
    present = adoption.release_numbers(repo.tree)
    found = list(adoption.releases_in_tree(repo.tree, present, store.release_keys()))
    if found:
        log.info("adopting %d release(s) found in the manifest repository", len(found))
        store.adopt(found, author)
    # And the other way round: pushed releases the tree no longer holds were cleaned up (by a
    # batch whose push the store did not see, or by someone else).
    gone = store.pushed_in_repository() - present
    if gone:
        store.mark_removed(sorted(gone))


def record_environments(repo: ManifestRepo, store: Store) -> None:
    """Mirror the environment configs into the store, for checks made before the repo lock
    (RBAC needs each environment's group). Unreadable configs are left out."""
    configs: dict[str, tuple[bool, str | None]] = {}
    for name in repo.tree.list(("environments",)):
        if not NAME.fullmatch(name) or not repo.tree.is_dir(("environments", name)):
            continue
        try:
            config = read_config(repo.tree, name)
        except ApplyError:
            continue
        configs[name] = (config.upstream_latest, config.environment_group)
    store.save_environments(configs, environments_view(repo.tree))
