"""Applying a batch of releases to the clone: one commit per release, all by one fast-import.

Nothing here pushes or touches the store: the exporter decides what the outcome means.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field

from server.errors import INTERNAL_APPLY_ERROR
from server.errors import Forbidden
from server.models import StoredRelease
from server.repo import layout
from server.repo.commits import UnsafeIdentity
from server.repo.git import GitError
from server.repo.manifest_repo import ManifestRepo
from server.repo.safe_tree import ApplyError
from server.repo.safe_tree import SafeTree

log = logging.getLogger(__name__)

#: Decides, on the tree a release is applied to, whether its requester may make it
#: (DeployRelease depends on the environment configs in that very tree).
ReleaseGuard = Callable[[StoredRelease, SafeTree], None]


@dataclass
class Applied:
    """What a batch did: (release id, commit) pairs, cleaned-up versions, and whether any
    environment changed (then the environments view is refreshed)."""

    commits: list[tuple[int, str]] = field(default_factory=list)
    removed: list[tuple[str, int]] = field(default_factory=list)
    environments_touched: bool = False
    # Releases refused, as (release id, error code, message): recorded only once the tree
    # they were judged on is known to be the remote's.
    refusals: list[tuple[int, str, str]] = field(default_factory=list)
    #: Every path the commits changed (the Argo CD webhook lists the ones it reads).
    paths: list[str] = field(default_factory=list)


def commit_each(
    repo: ManifestRepo,
    batch: list[StoredRelease],
    *,
    committer: tuple[str, str],
    settings: layout.LayoutSettings,
    guard: ReleaseGuard | None,
    pushed: dict[str, str],
) -> Applied:
    """One commit per release (messages as Kuberpult's), all made by one fast-import.

    ``pushed`` maps Release-Id trailers found on the branch to their commits: such a release
    is already on the remote (we died after a push) and is not committed again.

    A release that cannot be applied is listed in ``refusals`` with its own error and does
    not sink the batch: what came before it is committed, and the tree is reset past its
    writes.
    """
    applied = Applied()
    commits, removed = applied.commits, applied.removed
    stream = repo.commits(committer)
    waiting: list[int] = []

    def flush(*, last: bool = False) -> None:
        nonlocal stream
        commits.extend(zip(waiting, stream.finish(), strict=True))
        waiting.clear()
        if not last:  # a stream left open would leak its file
            stream = repo.commits(committer)

    for release in batch:
        trailer = layout.release_trailer(release)
        sha = pushed.get(trailer.partition(": ")[2])
        if sha and layout.release_files_match(repo.tree, release):
            # Exactly once: the trailer names this row, and its files are there (a trailer
            # alone could be typed into any commit message by someone with push access).
            commits.append((release.id, sha))
            continue
        if guard is not None:
            try:
                guard(release, repo.tree)
            except Forbidden as refusal:
                applied.refusals.append((release.id, refusal.code, refusal.message))
                continue
            except ApplyError as error:
                applied.refusals.append((release.id, error.code, str(error)))
                continue
        try:
            change = layout.apply_release(repo.tree, release, settings)
            change = layout.with_argocd_files(repo.tree, change, settings)
        except ApplyError as error:
            flush()
            repo.discard_uncommitted()
            applied.refusals.append((release.id, error.code, str(error)))
            continue
        except (GitError, OSError):
            raise  # the clone, not the release: the exporter resyncs and applies again
        except Exception as error:
            # A bug in applying this release must not stop every batch after it (it would
            # be pending, and fail again, forever): it is refused alone, as a server error.
            log.exception("applying release %s of %r failed", release.version, release.application)
            flush()
            repo.discard_uncommitted()
            message = (
                f"applying the release to the manifest repository failed unexpectedly "
                f"({type(error).__name__}: {error}); nothing of it was written"
            )
            applied.refusals.append((release.id, INTERNAL_APPLY_ERROR, message))
            continue
        if change.paths:
            try:
                stream.add(
                    f"{change.message}\n{trailer}\n",
                    (release.author_name, release.author_email),
                    change.paths,
                )
            except UnsafeIdentity as error:
                # The HTTP layer refuses such authors; a row that holds one anyway must not
                # sink the batch.
                flush()
                repo.discard_uncommitted()
                applied.refusals.append((release.id, "invalid_author", str(error)))
                continue
            waiting.append(release.id)
            applied.paths += change.paths
        removed += [(release.application, v) for v in change.removed_versions]
        applied.environments_touched |= any(
            path.startswith("environments/") for path in change.paths
        )
        if not change.paths:
            # Already on the remote (we died after the push, before recording it).
            directory = f"applications/{release.application}/releases/{release.version}"
            commits.append((release.id, repo.last_commit_touching(directory) or ""))
    flush(last=True)
    return applied
