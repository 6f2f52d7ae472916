"""Kuberpult's commit-data tree (``KUBERPULT_GIT_WRITE_COMMIT_DATA``): ``commits/<2>/<38>/``.

It records, per source commit, which applications it released and the events that followed
(new release, deployment, a deployment a lock prevented, being replaced). Event ids are
time-based UUIDs derived from the release row, so re-applying a release after a crash writes
exactly the same files and makes no second commit.
"""

from __future__ import annotations

import uuid
from datetime import UTC
from datetime import datetime

from server.repo.safe_tree import Parts
from server.repo.safe_tree import SafeTree
from server.repo.safe_tree import changed

# 100-ns intervals between the UUID epoch (1582-10-15) and the Unix epoch.
_UUID_EPOCH_OFFSET = 0x01B21DD213814000


def commit_dir(commit: str) -> Parts:
    """The directory of a source commit: first two hex characters, then the other 38."""
    return ("commits", commit[:2], commit[2:])


def event_uuid(created_at: str, release_id: int, index: int) -> uuid.UUID:
    """A version-1 (time-based) UUID for the ``index``-th event of a release."""
    moment = datetime.strptime(created_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    ticks = int(moment.timestamp()) * 10_000_000 + (release_id % 100_000) * 100 + index
    ticks += _UUID_EPOCH_OFFSET
    clock_seq = release_id & 0x3FFF
    node = ((release_id >> 14) & 0xFFFFFFFFFF) | 0x010000000000  # multicast bit: not a MAC
    return uuid.UUID(
        fields=(
            ticks & 0xFFFFFFFF,
            (ticks >> 32) & 0xFFFF,
            ((ticks >> 48) & 0x0FFF) | 0x1000,
            ((clock_seq >> 8) & 0x3F) | 0x80,
            clock_seq & 0xFF,
            node,
        )
    )


class CommitData:
    """Writes the commit-data files of one release; collects the paths it wrote."""

    def __init__(self, tree: SafeTree, created_at: str, release_id: int) -> None:
        self.tree = tree
        self.created_at = created_at
        self.release_id = release_id
        self.paths: list[str] = []
        self._events = 0

    def _write(self, parts: Parts, content: str) -> None:
        self.paths += changed(self.tree.write(parts, content.encode()))

    def new_release(
        self,
        commit: str,
        previous: str | None,
        application: str,
        message: str | None,
        environments: list[str],
    ) -> None:
        """The commit's directory, its application entry and a ``new-release`` event; links
        ``previousCommit``/``nextCommit`` when the previous commit is already recorded."""
        base = commit_dir(commit)
        self._write((*base, ".empty"), "")
        self._write((*base, "source_message"), message or "")
        self._write((*base, "applications", application, ".gitkeep"), "")
        self.event(commit, "new-release", {}, environments)
        if previous and previous != commit and self.tree.is_dir(commit_dir(previous)):
            self._write((*base, "previousCommit"), previous)
            self._write((*commit_dir(previous), "nextCommit"), commit)

    def event(
        self,
        commit: str,
        event_type: str,
        fields: dict[str, str],
        environments: list[str] | None = None,
    ) -> None:
        """One event directory under ``commit``: ``eventType`` plus one file per field."""
        self._events += 1
        event_id = str(event_uuid(self.created_at, self.release_id, self._events))
        base = (*commit_dir(commit), "events", event_id)
        self._write((*base, "eventType"), event_type)
        for name, value in sorted(fields.items()):
            self._write((*base, name), value)
        for env in environments or []:
            self._write((*base, "environments", env, ".gitkeep"), "")


def forget_application(tree: SafeTree, commit: str, application: str) -> list[str]:
    """Remove an application's entry from a commit's directory (its release was cleaned up)."""
    applications = (*commit_dir(commit), "applications")
    if not tree.is_dir(applications):
        return []
    removed = changed(tree.remove((*applications, application)))
    if not tree.list(applications):
        removed += changed(tree.remove(applications))
    return removed
