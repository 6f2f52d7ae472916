"""The exporter: brings the manifest repository up to date with SQLite, one batch per push.

One exporter works at a time, across every gunicorn worker and thread, under an ``flock`` on
``repo.lock``. Whoever holds it takes *all* pending releases (up to the batch cap), commits
each, and pushes once; the other requests only watch their own row and answer when a batch
holding it is pushed. That is the group commit: no coordinator, just the lock and the rows.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field

from server import adoption
from server import layout
from server import metrics
from server.config import Config
from server.environments import read_config
from server.errors import Forbidden
from server.faults import maybe_die
from server.git import REMOTE_VIEW
from server.git import Git
from server.git import GitCredentials
from server.git import GitError
from server.git import NonFastForward
from server.git import PushRejected
from server.git import remote_view
from server.layout import Change
from server.manifest_repo import ManifestRepo
from server.manifest_repo import UnsafeIdentity
from server.models import ExportState
from server.models import StoredRelease
from server.repo_view import environments_view
from server.safe_tree import ApplyError
from server.safe_tree import SafeTree
from server.safe_tree import changed
from server.store import Store
from server.store import utc_now

log = logging.getLogger(__name__)

_ENVIRONMENT = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_REDO = 5  # non-fast-forward rounds before giving up for this request
# Seconds a push always gets, even past the request's deadline.
PUSH_MINIMUM = 5.0
# How far back recovery looks for Release-Id trailers: a few batches' worth of commits.
RECENT_COMMITS = 500
_LOCK_POLL = 0.005
_WAITER_MAX_POLL = 0.05

# The embedded default's first start writes these two environments.
SEED_ENVIRONMENTS: dict[tuple[str, ...], bytes] = {
    ("environments", "development", "config.json"): b'{"upstream":{"latest":true}}\n',
    ("environments", "staging", "config.json"): b'{"upstream":{"environment":"development"}}\n',
}


def _status(batch_size: int, started: float, error: str | None) -> dict[str, object]:
    """The "export" view: how the last batch went (for /readyz)."""
    return {
        "last_attempt_at": utc_now(),
        "ok": error is None,
        "error": error,
        "batch_size": batch_size,
        "seconds": round(time.monotonic() - started, 3),
    }


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


class EditNotPushed(Exception):
    """An edit could not be pushed; it was not applied."""


@dataclass(frozen=True)
class ExportReport:
    """How an export round ended: ``error`` is why pending releases are still pending;
    ``rejected`` when the remote refused the push itself (a hook, branch protection)."""

    error: str | None = None
    rejected: bool = False


class Exporter:
    """Exports pending releases from the store to the remote manifest repository."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._push_in_flight = config.data_dir / "push-in-flight"
        #: Decides, on the tree a release is applied to, whether its requester may make it
        #: (DeployRelease depends on the environment configs in that very tree).
        self.release_guard: Callable[[StoredRelease, SafeTree], None] | None = None
        self.layout_settings = layout.LayoutSettings(
            release_versions_limit=config.release_versions_limit,
            write_commit_data=config.write_commit_data,
        )

    def _repo(self) -> ManifestRepo:
        config = self.config
        credentials = GitCredentials(
            url=config.git_url,
            ssh_key=config.git_ssh_key_path,
            known_hosts=config.git_known_hosts_path,
            token_file=config.git_token_file,
            username=config.git_username,
        )
        return ManifestRepo(
            config.clone_dir,
            config.git_url,
            config.git_branch,
            config.data_dir / "git-home",
            credentials,
        )

    @contextmanager
    def _locked(self, deadline: float) -> Iterator[bool]:
        """Hold the repo flock, polling until ``deadline``; yield whether it was acquired."""
        # A fresh open file description per holder, so threads of one worker exclude each
        # other exactly like separate processes do. The kernel drops the lock if we die.
        fd = os.open(self.config.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(_LOCK_POLL)
            yield True
        finally:
            os.close(fd)

    def prepare(self) -> None:
        """At startup: create and seed the embedded remote if needed, sync the clone.

        Failures are logged, not raised: the server still takes releases while the remote is
        away, and pushes them when it is back.
        """
        deadline = time.monotonic() + self.config.git_push_timeout
        with self._locked(deadline) as acquired:
            if not acquired:
                return
            # For /readyz: why the remote has not answered a fetch yet; None once it has.
            unanswered: str | None = "the clone was not synced"
            try:
                if self.config.embedded_remote:
                    self._create_embedded_remote()
                repo = self._repo()
                repo.take_clean_marker()
                self._sync(repo, self.config.git_push_timeout)
                unanswered = None
                if self.config.embedded_remote and repo.head() is None:
                    identity = (self.config.git_author_name, self.config.git_author_email)
                    paths = changed(*(repo.tree.write(p, c) for p, c in SEED_ENVIRONMENTS.items()))
                    stream = repo.commits(identity)
                    stream.add("seed environments development and staging\n", identity, paths)
                    stream.finish()
                    repo.push(self.config.git_push_timeout)
                    self._record_environments(repo)
                repo.mark_clean()
            except (GitError, OSError) as error:
                log.warning("manifest repository not ready at startup: %s", error)
                if unanswered is not None:
                    unanswered = str(error)
            store = Store.for_config(self.config)
            try:
                store.save_view(REMOTE_VIEW, remote_view(unanswered))
            finally:
                store.close()

    def _create_embedded_remote(self) -> None:
        bare = self.config.data_dir / "manifests.git"
        if not (bare / "HEAD").exists():
            bare.mkdir(parents=True, exist_ok=True)
            Git(bare, self.config.data_dir / "git-home").run(
                ["init", "-q", "--bare", f"--initial-branch={self.config.git_branch}"]
            )

    def _sync(self, repo: ManifestRepo, timeout: float) -> None:
        """Reset the clone to the remote, adopt releases someone else wrote, and refresh the
        mirror of environment configs."""
        repo.sync(timeout)
        self._adopt(repo)
        self._record_environments(repo)

    def adopt(self, deadline: float) -> None:
        """Adopt the clone's releases the store does not know (after a refused release's row
        was deleted, the repository's release under that number takes its place)."""
        with self._locked(deadline) as acquired:
            if acquired:
                self._adopt(self._repo())

    def _adopt(self, repo: ManifestRepo) -> None:
        """Import the repository's releases that the store does not know (see adoption)."""
        store = Store.for_config(self.config)
        try:
            # Never fails the sync: what cannot be read is skipped (see adoption).
            present = adoption.release_numbers(repo.tree)
            found = list(adoption.releases_in_tree(repo.tree, present, store.release_keys()))
            if found:
                log.info("adopting %d release(s) found in the manifest repository", len(found))
                store.adopt(found, (self.config.git_author_name, self.config.git_author_email))
            # And the other way round: pushed releases the tree no longer holds were cleaned
            # up (by a batch whose push the store did not see, or by someone else).
            gone = store.pushed_in_repository() - present
            if gone:
                store.mark_removed(sorted(gone))
        finally:
            store.close()

    def _record_environments(self, repo: ManifestRepo) -> None:
        """Mirror the environment configs into SQLite, for checks made before the repo lock
        (RBAC needs each environment's group). Unreadable configs are left out."""
        configs: dict[str, tuple[bool, str | None]] = {}
        for name in repo.tree.list(("environments",)):
            if not _ENVIRONMENT.fullmatch(name) or not repo.tree.is_dir(("environments", name)):
                continue
            try:
                config = read_config(repo.tree, name)
            except ApplyError:
                continue
            configs[name] = (config.upstream_latest, config.environment_group)
        view = environments_view(repo.tree)
        store = Store.for_config(self.config)
        try:
            store.save_environments(configs, view)
        finally:
            store.close()

    def housekeeping(self) -> None:
        """Let git tidy the clone's object store, if nobody is exporting right now."""
        with self._locked(time.monotonic()) as acquired:
            if acquired:
                try:
                    self._repo().housekeeping(self.config.git_push_timeout * 4)
                except GitError as error:
                    log.warning("git housekeeping failed: %s", error)

    def export_until(self, store: Store, release_id: int | None, deadline: float) -> ExportReport:
        """Push pending releases until ``release_id`` is pushed (or, for None, none is pending).

        Whoever gets the repo lock exports for everyone; the others only watch their own row,
        so a finished batch releases all its waiters at once. Returns early, with the reason,
        when ``deadline`` (``time.monotonic()``) passes or a push fails; pending releases then
        stay pending for the next round.
        """
        pause = _LOCK_POLL
        while True:
            if release_id is not None and store.release_state(release_id) != ExportState.PENDING:
                return ExportReport()
            with self._locked(time.monotonic()) as acquired:
                if acquired:
                    return self._export_locked(store, release_id, deadline)
            if time.monotonic() >= deadline:
                return ExportReport("timed out waiting for the manifest repository lock")
            # Many waiters polling fast would eat the CPU the exporter needs.
            time.sleep(pause)
            pause = min(pause * 1.5, _WAITER_MAX_POLL)

    def _export_locked(self, store: Store, release_id: int | None, deadline: float) -> ExportReport:
        while True:
            if release_id is not None and store.release_state(release_id) != ExportState.PENDING:
                return ExportReport()
            batch = store.pending_releases(self.config.max_commits_per_push)
            if not batch:
                return ExportReport()
            started = time.monotonic()
            failure = self._export_batch(store, batch, deadline)
            if failure is not None:
                store.save_view("export", _status(len(batch), started, failure.error))
            seconds = time.monotonic() - started
            metrics.PUSH_SECONDS.labels("ok" if failure is None else "failed").observe(seconds)
            metrics.BATCH_SIZE.observe(len(batch))
            log.info(
                "push",
                extra={
                    "fields": {
                        "event": "push",
                        "batch_size": len(batch),
                        "seconds": round(seconds, 3),
                        "ok": failure is None,
                        "error": failure.error if failure else None,
                    }
                },
            )
            if failure is not None:
                return failure
            if time.monotonic() >= deadline:
                return ExportReport("the deadline passed with releases still pending")

    def _export_batch(
        self, store: Store, batch: list[StoredRelease], deadline: float
    ) -> ExportReport | None:
        """Commit every release of ``batch`` and push once; None when done, else why not."""
        started = time.monotonic()
        repo = self._repo()
        clean = repo.take_clean_marker()
        last_failure = "no attempt finished"
        for _ in range(MAX_REDO):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return ExportReport("the deadline passed before the push")
            try:
                if not clean:
                    self._sync(repo, min(remaining, self.config.git_push_timeout))
            except (GitError, OSError) as error:
                log.warning("cannot sync with the remote: %s", error)
                return ExportReport(str(error))
            try:
                head_before = repo.head()
                # After a sync (a crash, someone else's push), the remote may already hold
                # some of these releases: their commits carry the Release-Id trailer.
                unsure = not clean or self._push_in_flight.exists()
                pushed = repo.recent_trailers("Release-Id", RECENT_COMMITS) if unsure else {}
                applied = self._commit_each(repo, batch, pushed)
            except (GitError, OSError) as error:
                # A local failure (a stale index.lock, a tree a killed git left dirty):
                # start over from the remote, which also repairs the clone.
                log.warning("local git failure, syncing and re-applying: %s", error)
                clean = False
                last_failure = f"local git failure: {error}"
                continue
            if applied.refusals and clean:
                # Judged on a clone that was not fetched for this batch: the remote may have
                # been repaired since (another worker marked the clone clean before that).
                # A refusal is only final on a fresh tree.
                clean = False
                continue
            for release_id, code, message in applied.refusals:
                store.mark_failed(release_id, code, message)
            maybe_die(self.config, "after-git-commit")
            if repo.head() != head_before:
                # Until the store records the push, the remote may hold these commits without
                # the store knowing: the next batch then looks for their trailers.
                self._push_in_flight.touch()
                try:
                    # Never a push with a fraction of a second left: killed half way, it only
                    # forces a full resync. It may run past the request's budget instead.
                    floor = min(PUSH_MINIMUM, self.config.git_push_timeout)
                    left = min(deadline - time.monotonic(), self.config.git_push_timeout)
                    repo.push(max(floor, left))
                except NonFastForward:
                    log.info("remote moved; fetching and re-applying %d release(s)", len(batch))
                    clean = False
                    last_failure = "the remote kept moving"
                    batch = [r for r in batch if store.release_state(r.id) == ExportState.PENDING]
                    continue
                except PushRejected as error:
                    log.warning("%s", error)
                    return ExportReport(str(error), rejected=True)
                except GitError as error:
                    log.warning("push failed: %s", error)
                    return ExportReport(str(error))
                maybe_die(self.config, "after-push")
            store.mark_pushed(applied.commits, applied.removed, _status(len(batch), started, None))
            self._push_in_flight.unlink(missing_ok=True)
            if not applied.refusals:
                # After a refusal the clone stays unmarked: someone may repair what the
                # tree holds, and the next batch should see it.
                repo.mark_clean()
            if applied.environments_touched:
                self._record_environments(repo)
            return None
        # Say what happened: "the remote kept moving" only when it did.
        return ExportReport(f"{last_failure}; gave up after {MAX_REDO} attempts")

    def _commit_each(
        self,
        repo: ManifestRepo,
        batch: list[StoredRelease],
        pushed: dict[str, str] | None = None,
    ) -> Applied:
        """One commit per release (messages as Kuberpult's), all made by one fast-import.

        A release that cannot be applied is listed in ``refusals`` with its own error and does
        not sink the batch: what came before it is committed, and the tree is reset past its
        writes.
        """
        applied = Applied()
        commits, removed = applied.commits, applied.removed
        committer = (self.config.git_author_name, self.config.git_author_email)
        stream = repo.commits(committer)
        waiting: list[int] = []

        def flush() -> None:
            nonlocal stream
            commits.extend(zip(waiting, stream.finish(), strict=True))
            waiting.clear()
            stream = repo.commits(committer)

        for release in batch:
            trailer = layout.release_trailer(release)
            sha = (pushed or {}).get(trailer.partition(": ")[2])
            if sha and layout.release_files_match(repo.tree, release):
                # Exactly once: the trailer names this row, and its files are there (a trailer
                # alone could be typed into any commit message by someone with push access).
                commits.append((release.id, sha))
                continue
            if self.release_guard is not None:
                try:
                    self.release_guard(release, repo.tree)
                except Forbidden as refusal:
                    applied.refusals.append((release.id, refusal.code, refusal.message))
                    continue
                except ApplyError as error:
                    applied.refusals.append((release.id, error.code, str(error)))
                    continue
            try:
                change = layout.apply_release(repo.tree, release, self.layout_settings)
            except ApplyError as error:
                flush()
                repo.discard_uncommitted()
                applied.refusals.append((release.id, error.code, str(error)))
                continue
            if change.paths:
                try:
                    stream.add(
                        f"{change.message}\n{trailer}\n",
                        (release.author_name, release.author_email),
                        change.paths,
                    )
                except UnsafeIdentity as error:
                    # The HTTP layer refuses such authors; a row that holds one anyway must
                    # not sink the batch.
                    flush()
                    repo.discard_uncommitted()
                    applied.refusals.append((release.id, "invalid_author", str(error)))
                    continue
                waiting.append(release.id)
            removed += [(release.application, v) for v in change.removed_versions]
            applied.environments_touched |= any(
                path.startswith("environments/") for path in change.paths
            )
            if not change.paths:
                # Already on the remote (we died after the push, before recording it).
                directory = f"applications/{release.application}/releases/{release.version}"
                commits.append((release.id, repo.last_commit_touching(directory) or ""))
        flush()
        return applied

    def run_edit(
        self, edit: Callable[[SafeTree], Change], author: tuple[str, str], deadline: float
    ) -> str | None:
        """Apply one edit that is not a release (a lock, an environment), commit and push it.

        Returns the new commit, or None when the edit changed nothing.
        :raises ApplyError: the edit cannot be applied; nothing was pushed.
        :raises EditNotPushed: the remote could not be reached in time; nothing was pushed.
        """
        committer = (self.config.git_author_name, self.config.git_author_email)
        with self._locked(deadline) as acquired:
            if not acquired:
                raise EditNotPushed("timed out waiting for the manifest repository lock")
            repo = self._repo()
            clean = repo.take_clean_marker()
            for _ in range(MAX_REDO):
                try:
                    if not clean:
                        self._sync(repo, max(deadline - time.monotonic(), 1.0))
                    try:
                        change = edit(repo.tree)
                    except ApplyError:
                        repo.discard_uncommitted()
                        if clean:
                            # Judged on a clone not fetched for this edit: the remote may
                            # hold what the edit needs (an environment someone just pushed).
                            clean = False
                            continue
                        repo.mark_clean()
                        raise
                    if not change.paths:
                        if clean:
                            clean = False  # "already so" is only final on a fresh tree
                            continue
                        repo.mark_clean()
                        return None
                    stream = repo.commits(committer)
                    stream.add(change.message, author, change.paths)
                    sha = stream.finish()[0]
                    repo.push(max(deadline - time.monotonic(), 1.0))
                    repo.mark_clean()
                    self._record_environments(repo)
                    return sha
                except NonFastForward:
                    clean = False
                except (GitError, OSError) as error:
                    raise EditNotPushed(str(error)) from error
            raise EditNotPushed(f"the remote kept moving; gave up after {MAX_REDO} attempts")
