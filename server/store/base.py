"""The store interface and the SQL both backends share.

The store is the source of truth: applications, releases, their manifests and export state.
Every write that reads first (the idempotency check, the next version) runs in
``transaction()``, which admits one writer at a time across every worker and replica (SQLite:
``BEGIN IMMEDIATE``; PostgreSQL: a transaction-level advisory lock), so both backends answer
alike. The SQL here is written with ``?`` placeholders and in the dialect both databases speak;
a backend supplies the connection, the transaction and the few differing expressions.

Over 250 lines: one class whose public methods are the interface every other layer uses.
"""

from __future__ import annotations

import json
import time
from abc import ABC
from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import Protocol

from server.models import ExportState
from server.models import FoundRelease
from server.models import StoredRelease
from server.store.schema import RELEASE_TEXT_FIELDS


def utc_now() -> str:
    """The current time as RFC 3339 UTC with seconds, the format written to the repo."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Cursor(Protocol):
    """What both drivers' cursors offer and the shared SQL uses."""

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Store(ABC):
    """One database connection; open one per request or thread, never share across them."""

    #: An aggregate that joins text values with ", " (group_concat vs string_agg).
    JOIN_TEXT = "group_concat({}, ', ')"
    #: The longest a request waiting for its push sleeps between looks at its row.
    WAITER_MAX_POLL = 0.05
    #: The first wait of a release for its export, before it looks again.
    WAITER_FIRST_POLL = 0.005

    # -- what a backend provides ------------------------------------------------------------

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Run one statement (``?`` placeholders)."""

    @abstractmethod
    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per row (``?`` placeholders)."""

    @abstractmethod
    def transaction(self, *, durable: bool = True) -> AbstractContextManager[None]:
        """A write transaction, one writer at a time; a busy database becomes a 503.

        ``durable=False`` may skip the flush at commit: only for facts the exporter can find
        out again (what is on the remote), never for an accepted release.
        """

    @abstractmethod
    def migrate(self) -> None:
        """Create or upgrade the schema; safe to call from every worker and replica at once."""

    @abstractmethod
    def close(self) -> None:
        """Give the connection back."""

    def export_generation(self) -> int:
        """A number that changes whenever an export finished somewhere (see wait_for_export)."""
        return 0

    def wait_for_export(self, seen: int, timeout: float) -> None:
        """Wait up to ``timeout`` seconds, returning early once ``export_generation()`` moved
        past ``seen``. Without notifications this is a plain sleep (the caller polls)."""
        time.sleep(timeout)

    def exporting_replica(self) -> str | None:
        """The replica exporting right now, where the backend can tell (PostgreSQL)."""
        return None

    def _notify_export(self) -> None:  # noqa: B027 - a hook each backend fills in
        """Tell waiters, after the current transaction commits, that rows changed state."""

    # -- reads ------------------------------------------------------------------------------

    def ping(self) -> None:
        """Raise ``Unavailable`` unless the database answers."""
        self._execute("select 1").fetchone()

    def find_release(self, application: str, version: int) -> StoredRelease | None:
        """The release ``version`` of ``application``, if stored."""
        rows = self._release_rows("application = ? and version = ?", [application, version])
        return self._with_manifests(rows[0]) if rows else None

    def release_keys(self) -> set[tuple[str, int]]:
        """(application, version) of every release the store holds."""
        rows = self._execute("select application, version from releases").fetchall()
        return {(str(app), int(version)) for app, version in rows}

    def pushed_in_repository(self) -> set[tuple[str, int]]:
        """(application, version) of pushed releases not recorded as cleaned up."""
        rows = self._execute(
            "select application, version from releases where state = ? and "
            "removed_from_repo_at is null",
            [ExportState.PUSHED.value],
        ).fetchall()
        return {(str(app), int(version)) for app, version in rows}

    def find_by_client_uuid(self, application: str, client_uuid: str) -> StoredRelease | None:
        """The release of ``application`` a client sent with this ``client-uuid``, if any."""
        rows = self._release_rows("application = ? and client_uuid = ?", [application, client_uuid])
        return self._with_manifests(rows[0]) if rows else None

    def release_by_id(self, release_id: int) -> StoredRelease:
        """The release with this row id."""
        return self._with_manifests(self._release_rows("id = ?", [release_id])[0])

    def release_outcome(self, release_id: int) -> StoredRelease:
        """The release with this row id without its manifests: how its export went (state,
        commit, error) is all a waiting request needs, and manifests are the heavy part."""
        return self._to_release(self._release_rows("id = ?", [release_id])[0], {})

    def release_state(self, release_id: int) -> ExportState:
        """Only the export state of a release (cheap)."""
        row = self._execute("select state from releases where id = ?", [release_id]).fetchone()
        return ExportState(row[0])

    def highest_version(self, application: str) -> int | None:
        """The highest stored version of ``application``."""
        row = self._execute(
            "select max(version) from releases where application = ?", [application]
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def application_team(self, application: str) -> str | None:
        """The team that owns ``application`` now."""
        row = self._execute(
            "select team from applications where name = ?", [application]
        ).fetchone()
        return None if row is None else str(row[0]) if row[0] is not None else None

    def pending_releases(self, limit: int, max_bytes: int | None = None) -> list[StoredRelease]:
        """The oldest releases not yet on the remote (whoever accepted them): at most ``limit``,
        and no more than ``max_bytes`` of manifests in all (but always the oldest one)."""
        sizes = self._execute(
            "select r.id, coalesce(sum(length(m.content)), 0) from releases r "
            "left join release_manifests m on m.release_id = r.id where r.state = ? "
            "group by r.id order by r.id limit ?",
            [ExportState.PENDING.value, limit],
        ).fetchall()
        chosen: list[int] = []
        total = 0
        for release_id, size in sizes:
            if chosen and max_bytes is not None and total + int(size) > max_bytes:
                break
            chosen.append(int(release_id))
            total += int(size)
        return [self.release_by_id(release_id) for release_id in chosen]

    def count_pending(self) -> int:
        """How many releases wait for a push."""
        return int(
            self._execute(
                "select count(*) from releases where state = ?", [ExportState.PENDING.value]
            ).fetchone()[0]
        )

    def environments(self) -> dict[str, tuple[bool, str]]:
        """The mirrored environment configs: name -> (upstream latest, environment group)."""
        rows = self._execute(
            "select name, upstream_latest, environment_group from environments"
        ).fetchall()
        return {name: (bool(latest), group or name) for name, latest, group in rows}

    def view(self, name: str) -> tuple[Any, str | None]:
        """A stored view and when it was taken; ({}, None) before the first one."""
        row = self._execute(
            "select json, updated_at from repository_views where name = ?", [name]
        ).fetchone()
        return (json.loads(row[0]), row[1]) if row else ({}, None)

    def applications(self) -> list[dict[str, Any]]:
        """Every application with its team and newest release."""
        rows = self._execute(
            "select a.name, a.team, max(r.version) from applications a "
            "left join releases r on r.application = a.name group by a.name, a.team "
            "order by a.name"
        ).fetchall()
        return [{"name": n, "team": t, "latest_version": v} for n, t, v in rows]

    def releases_page(
        self, application: str, offset: int, limit: int
    ) -> tuple[list[StoredRelease], int]:
        """One page of an application's releases, newest first, and how many there are."""
        total = self._execute(
            "select count(*) from releases where application = ?", [application]
        ).fetchone()[0]
        rows = self._release_rows(
            "application = ? order by version desc limit ? offset ?", [application, limit, offset]
        )
        return [self._with_manifests(row) for row in rows], int(total)

    def latest_releases(self, limit: int) -> list[dict[str, Any]]:
        """The newest releases across applications, without their manifests."""
        environments = self.JOIN_TEXT.format("m.environment")
        rows = self._execute(
            "select r.application, r.version, r.display_version, r.created_at, r.state, "  # noqa: S608 - fixed SQL
            f"r.commit_sha, r.source_commit_id, {environments} "
            "from releases r left join release_manifests m on m.release_id = r.id "
            "group by r.id order by r.id desc limit ?",
            [limit],
        ).fetchall()
        names = (
            "application",
            "version",
            "display_version",
            "created_at",
            "state",
            "commit_sha",
            "source_commit_id",
        )
        return [
            {
                **dict(zip(names, row[:7], strict=True)),
                "environments": sorted((row[7] or "").split(", ")) if row[7] else [],
            }
            for row in rows
        ]

    def releases_of_commit(self, commit: str) -> list[tuple[str, int, list[str]]]:
        """The pushed releases built from source commit ``commit`` (40 hex, any case):
        (application, version, environments), by application."""
        environments = self.JOIN_TEXT.format("m.environment")
        rows = self._execute(
            f"select r.application, r.version, {environments} from releases r "  # noqa: S608 - fixed SQL
            "left join release_manifests m on m.release_id = r.id "
            "where lower(r.source_commit_id) = ? and r.state = ? "
            "group by r.id, r.application, r.version order by r.application, r.version",
            [commit.lower(), ExportState.PUSHED.value],
        ).fetchall()
        return [
            (app, int(version), sorted(envs.split(", ")) if envs else [])
            for app, version, envs in rows
        ]

    def _release_rows(self, where: str, params: list[Any]) -> list[dict[str, Any]]:
        cursor = self._execute(f"select * from releases where {where}", params)  # noqa: S608 - fixed clauses
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _with_manifests(self, row: dict[str, Any]) -> StoredRelease:
        manifests = {
            environment: bytes(content)
            for environment, content in self._execute(
                "select environment, content from release_manifests where release_id = ? "
                "order by environment",
                [row["id"]],
            ).fetchall()
        }
        return self._to_release(row, manifests)

    @staticmethod
    def _to_release(row: dict[str, Any], manifests: dict[str, bytes]) -> StoredRelease:
        return StoredRelease(
            id=row["id"],
            application=row["application"],
            version=row["version"],
            manifests=manifests,
            created_at=row["created_at"],
            author_name=row["author_name"],
            author_email=row["author_email"],
            state=ExportState(row["state"]),
            commit_sha=row["commit_sha"],
            error=row["error"],
            error_code=row["error_code"],
            removed_from_repo_at=row["removed_from_repo_at"],
            pushed_at=row["pushed_at"],
            requester=row.get("requester"),
            client_uuid=row.get("client_uuid"),
            **{name: row[name] for name in RELEASE_TEXT_FIELDS},
        )

    # -- writes -----------------------------------------------------------------------------

    def mark_removed(self, releases: Sequence[tuple[str, int]]) -> None:
        """Record that these releases are no longer in the repository's tree."""
        with self.transaction(durable=False):
            self._executemany(
                "update releases set removed_from_repo_at = ? where application = ? and "
                "version = ? and removed_from_repo_at is null",
                [(utc_now(), app, version) for app, version in releases],
            )

    def save_environments(
        self, configs: dict[str, tuple[bool, str | None]], view: dict[str, Any]
    ) -> None:
        """Replace the mirror of the environment configs and the environments view, unless
        both are what is stored already (then nothing is written)."""
        if self.view("environments")[0] == json.loads(json.dumps(view)) and self.environments() == {
            name: (latest, group or name) for name, (latest, group) in configs.items()
        }:
            return
        now = utc_now()
        with self.transaction():
            self._execute("delete from environments")
            for name, (latest, group) in sorted(configs.items()):
                self._execute(
                    "insert into environments values (?, ?, ?, ?)", [name, int(latest), group, now]
                )
            self._put_view("environments", view)

    def save_view(self, name: str, data: Any) -> None:
        """Store a JSON view of the repository (replacing the previous one)."""
        with self.transaction():
            self._put_view(name, data)

    def prepend_to_view(self, name: str, entry: Any, keep: int) -> None:
        """Put ``entry`` first in a list view, keeping the newest ``keep`` (one transaction:
        two writers both land)."""
        with self.transaction():
            row = self._execute(
                "select json from repository_views where name = ?", [name]
            ).fetchone()
            previous = json.loads(row[0]) if row else []
            self._put_view(name, [entry, *previous][:keep])

    def _put_view(self, name: str, data: Any) -> None:
        self._execute(
            "insert into repository_views (name, json, updated_at) values (?, ?, ?) "
            "on conflict (name) do update set json = excluded.json, "
            "updated_at = excluded.updated_at",
            [name, json.dumps(data, sort_keys=True), utc_now()],
        )

    # The calls below run inside transaction(): the release service groups them.

    def insert_release(self, fields: dict[str, Any], manifests: dict[str, bytes]) -> int:
        """Insert a pending release and its manifests; the application row must exist."""
        row = {name: fields.get(name) for name in RELEASE_TEXT_FIELDS}
        row.update(
            application=fields["application"],
            version=fields["version"],
            author_name=fields["author_name"],
            author_email=fields["author_email"],
            created_at=fields["created_at"],
            requester=fields.get("requester"),
            client_uuid=fields.get("client_uuid"),
            state=ExportState.PENDING.value,
        )
        names = sorted(row)
        release_id = int(
            self._execute(
                f"insert into releases ({', '.join(names)}) "  # noqa: S608 - fixed column names
                f"values ({', '.join('?' for _ in names)}) returning id",
                [row[name] for name in names],
            ).fetchone()[0]
        )
        self._executemany(
            "insert into release_manifests (release_id, environment, content) values (?, ?, ?)",
            [(release_id, env, content) for env, content in sorted(manifests.items())],
        )
        return release_id

    def save_application(self, name: str, team: str | None) -> None:
        """Create the application, or move it to ``team`` when one is given (as Kuberpult)."""
        self._execute(
            "insert into applications (name, team, created_at) values (?, ?, ?) "
            "on conflict (name) do update set team = coalesce(excluded.team, applications.team)",
            [name, team, utc_now()],
        )

    def mark_pushed(
        self,
        commits: list[tuple[int, str]],
        removed: Sequence[tuple[str, int]] = (),
        status: dict[str, Any] | None = None,
    ) -> None:
        """Record that these releases are on the remote, each in its commit, and which older
        releases the cleanup rule took out of the repository (their rows stay); ``status``
        becomes the "export" view in the same transaction (one flush for all)."""
        pushed_at = utc_now()
        # If this is lost in a power cut the releases are pending again, and the next export
        # finds their files on the remote and marks them without a second commit.
        with self.transaction(durable=False):
            if status is not None:
                self._put_view("export", status)
            for application, version in removed:
                self._execute(
                    "update releases set removed_from_repo_at = ? "
                    "where application = ? and version = ?",
                    [pushed_at, application, version],
                )
            self._executemany(
                "update releases set state = ?, commit_sha = ?, pushed_at = ?, error = null "
                "where id = ?",
                [
                    (ExportState.PUSHED.value, sha, pushed_at, release_id)
                    for release_id, sha in commits
                ],
            )
            self._notify_export()

    def mark_failed(self, release_id: int, code: str, error: str) -> None:
        """Take a release out of the export queue because it cannot be written."""
        with self.transaction():
            self._execute(
                "update releases set state = ?, error = ?, error_code = ? where id = ?",
                [ExportState.FAILED.value, error, code, release_id],
            )
            self._notify_export()

    def delete_release(self, release_id: int) -> None:
        """Forget a release that was refused (it never reached the repository)."""
        with self.transaction():
            self.delete_release_rows(release_id)

    def delete_release_rows(self, release_id: int) -> None:
        """Delete a release's rows (call inside ``transaction()``)."""
        self._execute("delete from release_manifests where release_id = ?", [release_id])
        self._execute("delete from releases where id = ?", [release_id])

    def adopt(self, found: list[FoundRelease], author: tuple[str, str]) -> None:
        """Record releases read back from the repository as pushed (they are on it)."""
        if not found:
            return
        now = utc_now()
        with self.transaction():
            for release in found:
                if self.find_release(release.application, release.version) is not None:
                    continue  # another replica adopted it first
                self._execute(
                    "insert into applications (name, team, created_at) values (?, ?, ?) "
                    "on conflict (name) do nothing",
                    [release.application, release.team, now],
                )
                fields: dict[str, Any] = {
                    "application": release.application,
                    "version": release.version,
                    "author_name": author[0],
                    "author_email": author[1],
                    "created_at": release.created_at or now,
                    **release.texts,
                }
                release_id = self.insert_release(fields, release.manifests)
                self._execute(
                    "update releases set state = ?, pushed_at = ? where id = ?",
                    [ExportState.PUSHED.value, now, release_id],
                )

    def retry_failed(self, release_id: int) -> None:
        """Put a failed release back in the queue (its request came again)."""
        self._execute(
            "update releases set state = ? where id = ?", [ExportState.PENDING.value, release_id]
        )
