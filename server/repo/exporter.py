"""The exporter: brings the manifest repository up to date with SQLite, one batch per push.

One exporter works at a time, across every gunicorn worker and thread, under an ``flock`` on
``repo.lock``. Whoever holds it takes *all* pending releases (up to the batch cap), commits
each, and pushes once; the other requests only watch their own row and answer when a batch
holding it is pushed. That is the group commit: no coordinator, just the lock and the rows.

Over 250 lines: every method here runs under the repository lock and shares its retry rules; what
does not (the lock, a batch's commits, the store mirror, start-up) lives beside it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from server import metrics
from server.config import Config
from server.errors import EditPending
from server.errors import Forbidden
from server.faults import maybe_die
from server.models import ExportState
from server.models import StoredRelease
from server.repo import batch as batches
from server.repo import gathering
from server.repo import layout
from server.repo import mirror
from server.repo import startup
from server.repo import webhook
from server.repo.argocd import ArgoCdSettings
from server.repo.batch import ReleaseGuard
from server.repo.git import GitError
from server.repo.git import NonFastForward
from server.repo.git import PushRejected
from server.repo.layout import Change
from server.repo.lock import Holding
from server.repo.lock import RepoLock
from server.repo.lock import held_if_free
from server.repo.manifest_repo import ManifestRepo
from server.repo.pusher import STILL_PUSHING
from server.repo.pusher import Pusher
from server.repo.safe_tree import ApplyError
from server.repo.safe_tree import SafeTree
from server.store import Store
from server.store import export_lease
from server.store import open_store
from server.store import utc_now
from server.store import wake_waiters

log = logging.getLogger(__name__)

MAX_REDO = 5  # non-fast-forward rounds before giving up for this request
# How far back recovery looks for Release-Id trailers: a few batches' worth of commits.
RECENT_COMMITS = 500
#: After a replica pushed, the others leave it the export lease this long (see
#: ``Exporter._another_replicas_turn``).
OTHER_REPLICAS_TURN = 0.1


def _status(
    batch_size: int, started: float, error: str | None, left_behind: int = 0
) -> dict[str, object]:
    """The "export" view: how the last batch went (for /readyz), and how many releases
    arrived while it was made (the next one gathers for them: see ``gathering``)."""
    return {
        "last_attempt_at": utc_now(),
        "ok": error is None,
        "error": error,
        "batch_size": batch_size,
        "left_behind": left_behind,
        "seconds": round(time.monotonic() - started, 3),
    }


def _clean_here(repo: ManifestRepo, store: Store, replica: str) -> bool:
    """Whether the clone equals the remote: marked so, and no other replica's batch pushed
    another head since (without this check the batch was committed on the old head, and only
    the push's rejection sent it to fetch and commit again). Only batches record their head:
    after an edit, or another tool's push, the rejection still tells."""
    if not repo.take_clean_marker():
        return False
    status, _ = store.view("export")
    if not isinstance(status, dict) or status.get("replica") in (None, replica):
        return True
    pushed = status.get("head")
    return not isinstance(pushed, str) or pushed == (repo.head() or "")


class EditNotPushed(Exception):
    """An edit could not be pushed; it was not applied."""


@dataclass(frozen=True)
class ExportReport:
    """How an export round ended: ``error`` is why pending releases are still pending;
    ``rejected`` when the remote refused the push itself (a hook, branch protection)."""

    error: str | None = None
    rejected: bool = False
    #: The push goes on after the request's deadline (and holds the lock until it ends).
    still_pushing: bool = False


class Exporter:
    """Exports pending releases from the store to the remote manifest repository."""

    def __init__(self, config: Config) -> None:
        self.config = config
        # Whoever found the lock taken meanwhile may go on once it is free.
        self.lock = RepoLock(
            config.lock_path, export_lease(config), on_release=lambda: wake_waiters(config)
        )
        # Until the store records a push, the remote may hold its commits without the store
        # knowing: while this file exists, the next batch looks for their trailers.
        self._push_in_flight = config.data_dir / "push-in-flight"
        self._committer = (config.git_author_name, config.git_author_email)
        #: Checks each release on the very tree it is applied to (see batch.ReleaseGuard).
        self.release_guard: ReleaseGuard | None = None
        self.webhook = _webhook(config)
        self.pusher = Pusher()
        self.layout_settings = layout.LayoutSettings(
            release_versions_limit=config.release_versions_limit,
            write_commit_data=config.write_commit_data,
            argocd=ArgoCdSettings(
                config.git_url_for_argocd, config.git_branch, config.argocd_generate_files
            ),
        )

    def _repo(self) -> ManifestRepo:
        return startup.open_clone(self.config)

    def prepare(self, store: Store) -> None:
        """At a worker's start: sync the clone (see startup); never raises for the remote."""
        deadline = time.monotonic() + self.config.git_push_timeout
        with self.lock.held(deadline) as acquired:
            if acquired:
                startup.prepare(self.config, store)

    def adopt(self, store: Store, deadline: float) -> None:
        """Adopt the clone's releases the store does not know (after a refused release's row
        was deleted, the repository's release under that number takes its place)."""
        with self.lock.held(deadline) as acquired:
            if not acquired:
                return
            repo = self._repo()
            # A clone without a branch (a fetch that failed after it was made anew) says
            # nothing about what the remote holds: every pushed release would read as removed.
            if repo.head() is not None:
                mirror.adopt(repo, store, self._committer)

    def housekeeping(self) -> None:
        """Let git roll up the clone's packs; beside any export, without the lock (see
        ``ManifestRepo.housekeeping``)."""
        # One at a time across the workers; whoever finds it taken has nothing to do.
        with held_if_free(self.config.data_dir / "housekeeping.lock") as free:
            if not free:
                return
            try:
                self._repo().housekeeping(self.config.git_push_timeout * 4)
            except (GitError, OSError) as error:
                log.warning("git housekeeping failed: %s", error)

    def pack_count(self) -> int:
        """How many packs the clone holds: housekeeping is due when there are many."""
        return self._repo().pack_count()

    def export_until(self, store: Store, release_id: int | None, deadline: float) -> ExportReport:
        """Push pending releases until ``release_id`` is pushed (or, for None, none is pending).

        Whoever gets the repo lock exports for everyone; the others only watch their own row,
        so a finished batch releases all its waiters at once. Returns early, with the reason,
        when ``deadline`` (``time.monotonic()``) passes or a push fails; pending releases then
        stay pending for the next round.
        """
        pause = store.WAITER_FIRST_POLL
        while True:
            seen = store.export_generation()
            if release_id is not None and store.release_state(release_id) != ExportState.PENDING:
                return ExportReport()
            deferring = self._another_replicas_turn(store)
            if not deferring:
                with self.lock.held(time.monotonic()) as holding:
                    if holding:
                        return self._export_locked(store, release_id, deadline, holding)
            left = deadline - time.monotonic()
            if left <= 0:
                return ExportReport("timed out waiting for the manifest repository lock")
            # Many waiters polling fast would eat the CPU the exporter needs; where the store
            # sends notifications, a finished push wakes them at once instead.
            store.wait_for_export(seen, min(pause, left, deferring or pause))
            pause = min(pause * 1.5, store.WAITER_MAX_POLL)

    def _another_replicas_turn(self, store: Store) -> float:
        """Seconds this replica still leaves the export lease to the replica that pushed a
        moment ago (0: none). That replica's clone is up to date and its clients come back
        at once; taking the lease here would first fetch what it pushed (50 ms under P6's
        load, in 18 of 29 batches). Its batch takes this replica's releases too."""
        if not self.config.database_url:
            return 0.0  # one replica: nobody else's turn
        status, _ = store.view("export")
        if not isinstance(status, dict) or not status.get("ok"):
            return 0.0
        replica, when = status.get("replica"), status.get("pushed_at_epoch")
        if not isinstance(replica, str) or replica == self.config.replica_name:
            return 0.0
        if not isinstance(when, int | float):
            return 0.0
        age = time.time() - when
        # A clock behind the other replica's sees a push from the future: no turn then.
        return OTHER_REPLICAS_TURN - age if 0 <= age < OTHER_REPLICAS_TURN else 0.0

    def _export_locked(
        self, store: Store, release_id: int | None, deadline: float, holding: Holding
    ) -> ExportReport:
        """Export batches under the lock until ``release_id`` is pushed."""
        while True:
            if release_id is not None and store.release_state(release_id) != ExportState.PENDING:
                return ExportReport()

            def fetch() -> list[StoredRelease]:
                return store.pending_releases(
                    self.config.max_commits_per_push, self.config.max_bytes_per_push
                )

            batch = fetch()
            if not batch:
                return ExportReport()
            batch = gathering.gather(
                store, batch, deadline, fetch, self.config.max_commits_per_push
            )
            started = time.monotonic()
            failure = self._export_batch(store, batch, deadline, holding)
            if failure is not None and failure.still_pushing:
                return failure  # the push thread records how it ends
            if failure is not None:
                store.save_view("export", _status(len(batch), started, failure.error))
            _record_push(len(batch), started, failure.error if failure else None)
            if failure is not None:
                return failure
            if time.monotonic() >= deadline:
                return ExportReport(
                    "timed out: the request's deadline passed with releases still pending"
                )

    def _export_batch(
        self, store: Store, batch: list[StoredRelease], deadline: float, holding: Holding
    ) -> ExportReport | None:
        """Commit every release of ``batch`` and push once; None when done, else why not."""
        started = time.monotonic()
        repo = self._repo()
        clean = _clean_here(repo, store, self.config.replica_name)
        last_failure = "no attempt finished"
        for _ in range(MAX_REDO):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return ExportReport("timed out: the request's deadline passed before the push")
            try:
                if not clean:
                    # The push timeout, not what is left of the request's: a sync cut short
                    # only comes back, and on a remote slower than the request timeout it
                    # would never finish.
                    mirror.sync(repo, store, self._committer, self.config.git_push_timeout)
            except (GitError, OSError) as error:
                log.warning("cannot sync with the remote: %s", error)
                return ExportReport(str(error))
            try:
                head_before = repo.head()
                # After a sync (a crash, someone else's push), the remote may already hold
                # some of these releases: their commits carry the Release-Id trailer.
                unsure = not clean or self._push_in_flight.exists()
                pushed = repo.recent_trailers("Release-Id", RECENT_COMMITS) if unsure else {}
                applied = batches.commit_each(
                    repo,
                    batch,
                    committer=self._committer,
                    settings=self.layout_settings,
                    guard=self.release_guard,
                    pushed=pushed,
                )
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
                if not self.lock.still_held():
                    # Another replica may be exporting now: its push decides; ours would race.
                    return ExportReport("lost the export lock before the push")
                # Until the store records the push, the remote may hold these commits without
                # the store knowing: the next batch then looks for their trailers.
                self._push_in_flight.touch()
                finish = functools.partial(
                    self._finish_in_background,
                    repo=repo,
                    applied=applied,
                    batch_size=len(batch),
                    started=started,
                    head_before=head_before,
                )
                pushing = self.pusher.push_by(
                    repo, self.config.git_push_timeout, deadline, holding, finish
                )
                if pushing is None:
                    return ExportReport(STILL_PUSHING, still_pushing=True)
                try:
                    pushing.result()
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
                self._notify_argocd(repo, head_before, applied.paths)
            left_behind = max(0, store.count_pending() - len(batch))
            status = _status(len(batch), started, None, left_behind)
            self._record_batch(repo, store, applied, status)
            return None
        # Say what happened: "the remote kept moving" only when it did.
        return ExportReport(f"{last_failure}; gave up after {MAX_REDO} attempts")

    def _record_batch(
        self,
        repo: ManifestRepo,
        store: Store,
        applied: batches.Applied,
        status: dict[str, object],
    ) -> None:
        """After a batch is on the remote: the store says so, and the clone is known clean."""
        # The head this clone pushed: another replica's clone that is marked clean but holds
        # another head syncs before it commits (see ``_clean_here``).
        store.mark_pushed(
            applied.commits,
            applied.removed,
            {
                **status,
                "head": repo.head(),
                "replica": self.config.replica_name,
                "pushed_at_epoch": time.time(),  # last_attempt_at is to the second only
            },
        )
        self._push_in_flight.unlink(missing_ok=True)
        if not applied.refusals:
            # After a refusal the clone stays unmarked: someone may repair what the
            # tree holds, and the next batch should see it.
            repo.mark_clean()
        if applied.environments_touched:
            mirror.record_environments(repo, store)

    def _finish_in_background(
        self,
        error: GitError | None,
        *,
        repo: ManifestRepo,
        applied: batches.Applied,
        batch_size: int,
        started: float,
        head_before: str | None,
    ) -> None:
        """On the push thread, once a push that outlived its request has ended."""
        # The request's store closed with the request: this one is the push thread's.
        store = open_store(self.config)
        try:
            status = _status(batch_size, started, None if error is None else str(error))
            if error is None:
                maybe_die(self.config, "after-push")
                self._notify_argocd(repo, head_before, applied.paths)
                self._record_batch(repo, store, applied, status)
            elif not isinstance(error, NonFastForward):
                store.save_view("export", status)
        finally:
            store.close()
        _record_push(batch_size, started, None if error is None else str(error))

    def _record_edit(
        self, repo: ManifestRepo, store: Store, before: str | None, paths: list[str]
    ) -> None:
        """After an edit is on the remote: Argo CD hears of it; the mirror follows."""
        self._notify_argocd(repo, before, paths)
        repo.mark_clean()
        mirror.record_environments(repo, store)

    def _finish_edit_in_background(
        self,
        error: GitError | None,
        *,
        repo: ManifestRepo,
        before: str | None,
        paths: list[str],
    ) -> None:
        """On the push thread, once an edit's push that outlived its request has ended. A
        failed one is gone: the clone is not marked clean, so the next sync drops it."""
        if error is not None:
            return
        store = open_store(self.config)
        try:
            self._record_edit(repo, store, before, paths)
        finally:
            store.close()

    def _notify_argocd(self, repo: ManifestRepo, before: str | None, paths: list[str]) -> None:
        """After a push that succeeded: tell Argo CD which of its files changed (in the
        background; a webhook never delays or fails a release)."""
        after = repo.head()
        if self.webhook is None or after is None:
            return
        modified, removed = webhook.changed_files(
            paths, lambda path: repo.tree.read(tuple(path.split("/"))) is not None
        )
        self.webhook.after_push(before, after, modified, removed)

    def run_edit(
        self,
        store: Store,
        edit: Callable[[SafeTree], Change],
        author: tuple[str, str],
        deadline: float,
    ) -> str | None:
        """Apply one edit that is not a release (a lock, an environment), commit and push it.

        Returns the new commit, or None when the edit changed nothing.
        :raises ApplyError: the edit cannot be applied; nothing was pushed.
        :raises EditNotPushed: the remote could not be reached in time; nothing was pushed.
        :raises EditPending: the push goes on past ``deadline``, in the background.
        """
        with self.lock.held(deadline) as holding:
            if not holding:
                raise EditNotPushed("timed out waiting for the manifest repository lock")
            repo = self._repo()
            clean = repo.take_clean_marker()
            for _ in range(MAX_REDO):
                try:
                    if not clean:
                        mirror.sync(repo, store, self._committer, self.config.git_push_timeout)
                    try:
                        change = layout.with_argocd_files(
                            repo.tree, edit(repo.tree), self.layout_settings
                        )
                    except (ApplyError, Forbidden):
                        # A refusal, by the tree or by a permission decided on it.
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
                    before = repo.head()
                    stream = repo.commits(self._committer)
                    stream.add(change.message, author, change.paths)
                    sha = stream.finish()[0]
                    finish = functools.partial(
                        self._finish_edit_in_background,
                        repo=repo,
                        before=before,
                        paths=change.paths,
                    )
                    pushing = self.pusher.push_by(
                        repo, self.config.git_push_timeout, deadline, holding, finish
                    )
                    if pushing is None:
                        raise EditPending(
                            f"committed, not confirmed: {STILL_PUSHING}; send the same "
                            "request again to see whether it arrived (it is made once)"
                        )
                    pushing.result()
                    self._record_edit(repo, store, before, change.paths)
                    return sha
                except NonFastForward:
                    clean = False
                except (GitError, OSError) as error:
                    raise EditNotPushed(str(error)) from error
            raise EditNotPushed(f"the remote kept moving; gave up after {MAX_REDO} attempts")


def _record_push(batch_size: int, started: float, error: str | None) -> None:
    """A push in the metrics and the log."""
    seconds = time.monotonic() - started
    metrics.PUSH_SECONDS.labels("ok" if error is None else "failed").observe(seconds)
    metrics.BATCH_SIZE.observe(batch_size)
    log.info(
        "push",
        extra={
            "fields": {
                "event": "push",
                "batch_size": batch_size,
                "seconds": round(seconds, 3),
                "ok": error is None,
                "error": error,
            }
        },
    )


def _webhook(config: Config) -> webhook.Webhook | None:
    """The Argo CD webhook, when ``KUBERPULT_ARGO_CD_SERVER`` is set."""
    if not config.argocd_server:
        return None
    secret_path = config.argocd_webhook_secret_path
    secret = secret_path.read_bytes().strip() if secret_path is not None else None
    return webhook.Webhook(
        webhook.WebhookSettings(
            server=config.argocd_server,
            html_url=config.git_web_url or webhook.web_url(config.git_url_for_argocd),
            branch=config.git_branch,
            secret=secret or None,
            insecure=config.argocd_insecure,
        )
    )
